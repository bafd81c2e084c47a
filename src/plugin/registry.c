/*
 * The process-wide plugin registry: built-in classes at first use, loaded
 * libraries through kiln_plugin_load (dlopen RTLD_NOW | RTLD_LOCAL, one entry
 * symbol). Entries live in a fixed array that only grows, so a pointer to an
 * entry (its class, its schema) stays valid for the process lifetime and
 * lookups need no copy. Writers take the lock; readers take it too (cheap,
 * and lookups happen per node, not per element).
 */
#define _GNU_SOURCE
#include "plugin.h"
#include <dlfcn.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_CLASSES 1024

typedef struct entry {
    const kiln_plugin_class *cls;
    kiln_op_schema schema;
    char origin[256]; /* library path or "built-in" */
} entry;

static entry g_entries[MAX_CLASSES];
static int g_n;
static pthread_mutex_t g_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_once_t g_once = PTHREAD_ONCE_INIT;

kiln_status kiln__plugin_parse_attrs(const kiln_node *node, void *params, kiln_err *err);
kiln_status kiln__plugin_infer(const kiln_node *node, const void *params, const kiln_value *const *in, kiln_value *out,
                               kiln_err *err);

/* --- host services given to instances ------------------------------------ */

static void *host_alloc(void *ctx, size_t n) { return malloc(n ? n : 1); }
static void host_free(void *ctx, void *p) { free(p); }
static void host_log(void *ctx, int level, const char *msg) { /* the library never prints */ }

static const kiln_plugin_host g_host = {
    .abi_version = KILN_PLUGIN_ABI_VERSION,
    .struct_size = sizeof(kiln_plugin_host),
    .ctx = NULL,
    .alloc = host_alloc,
    .free = host_free,
    .log = host_log,
#ifdef KILN_HAVE_CUDA
    .cuda_available = 1,
#else
    .cuda_available = 0,
#endif
};

const kiln_plugin_host *kiln__plugin_host(void) { return &g_host; }

/* --- identity ------------------------------------------------------------ */

const char *kiln__plugin_version(const kiln_plugin_class *c) { return c->version && *c->version ? c->version : "1"; }
const char *kiln__plugin_namespace(const kiln_plugin_class *c) { return c->plugin_namespace ? c->plugin_namespace : ""; }

void kiln__plugin_id_str(const kiln_plugin_class *c, char *buf, size_t len)
{
    const char *ns = kiln__plugin_namespace(c);
    snprintf(buf, len, "%s%s%s/%s", ns, *ns ? "::" : "", c->name, kiln__plugin_version(c));
}

/* --- validation and registration ----------------------------------------- */

/* Checks one class against the ABI; msg gets why not. */
static bool class_ok(const kiln_plugin_class *c, char *msg, size_t len)
{
    if (!c) return snprintf(msg, len, "a class pointer is NULL"), false;
    if (c->abi_version == 0 || c->abi_version > KILN_PLUGIN_ABI_VERSION)
        return snprintf(msg, len, "class '%.100s' has ABI version %u; this kiln supports 1 to %u", c->struct_size >= offsetof(kiln_plugin_class, version) && c->name ? c->name : "?",
                        c->abi_version, KILN_PLUGIN_ABI_VERSION), false;
    if (c->struct_size < KILN_PLUGIN_CLASS_V1_SIZE)
        return snprintf(msg, len, "class has struct_size %u, smaller than the %zu bytes of an ABI-1 kiln_plugin_class", c->struct_size,
                        (size_t)KILN_PLUGIN_CLASS_V1_SIZE), false;
    if (!c->name || !*c->name || strlen(c->name) > 200) return snprintf(msg, len, "a class has no name (or one over 200 bytes)"), false;
    if (strlen(kiln__plugin_version(c)) > 64 || strlen(kiln__plugin_namespace(c)) > 200)
        return snprintf(msg, len, "class '%.100s': version or namespace too long", c->name), false;
    const char *missing = !c->create ? "create" : !c->destroy ? "destroy" : !c->get_output_types ? "get_output_types"
                          : !c->get_output_shapes ? "get_output_shapes" : (!c->execute && !c->enqueue) ? "execute or enqueue"
                          : (c->serialize && !c->deserialize) ? "deserialize (serialize is set)" : NULL;
    if (missing) return snprintf(msg, len, "class '%.100s' lacks the required callback %s", c->name, missing), false;
    if (c->min_inputs < 0 || c->min_outputs < 1 || (c->max_inputs >= 0 && c->max_inputs < c->min_inputs) ||
        (c->max_outputs >= 0 && c->max_outputs < c->min_outputs) || c->max_inputs > 4096 || c->max_outputs > 4096)
        return snprintf(msg, len, "class '%.100s' declares bad input/output counts (%d..%d inputs, %d..%d outputs)", c->name,
                        c->min_inputs, c->max_inputs, c->min_outputs, c->max_outputs), false;
    return true;
}

static bool same_id(const kiln_plugin_class *a, const kiln_plugin_class *b)
{
    return !strcmp(a->name, b->name) && !strcmp(kiln__plugin_version(a), kiln__plugin_version(b)) &&
           !strcmp(kiln__plugin_namespace(a), kiln__plugin_namespace(b));
}

/* Registers classes all or nothing; called with g_lock held. */
static kiln_status add_classes(const kiln_plugin_class *const *cls, int n, const char *origin, char *msg, size_t len)
{
    if (n < 1 || n > 256) return snprintf(msg, len, "it registers %d classes (1 to 256 allowed)", n), KILN_ERR_INVALID_ARG;
    if (g_n + n > MAX_CLASSES) return snprintf(msg, len, "more than %d plugin classes", MAX_CLASSES), KILN_ERR_LIMIT;
    for (int i = 0; i < n; i++) {
        if (!class_ok(cls[i], msg, len)) return KILN_ERR_INVALID_ARG;
        char id[512];
        kiln__plugin_id_str(cls[i], id, sizeof id);
        for (int k = 0; k < g_n; k++)
            if (same_id(g_entries[k].cls, cls[i]))
                return snprintf(msg, len, "plugin %s is already registered (by %s)", id, g_entries[k].origin), KILN_ERR_INVALID_ARG;
        for (int k = 0; k < i; k++)
            if (same_id(cls[k], cls[i])) return snprintf(msg, len, "plugin %s is registered twice by the library", id), KILN_ERR_INVALID_ARG;
    }
    for (int i = 0; i < n; i++) {
        entry *e = &g_entries[g_n + i];
        const kiln_plugin_class *c = cls[i];
        e->cls = c;
        snprintf(e->origin, sizeof e->origin, "%s", origin);
        e->schema = (kiln_op_schema){.op_type = c->name, .domain = "", .since_version = 1,
                                     .min_inputs = c->min_inputs, .max_inputs = c->max_inputs,
                                     .min_outputs = c->min_outputs, .max_outputs = c->max_outputs,
                                     .params_size = sizeof(kiln__plugin_params),
                                     .parse_attrs = kiln__plugin_parse_attrs, .infer = kiln__plugin_infer};
    }
    __atomic_store_n(&g_n, g_n + n, __ATOMIC_RELEASE);
    return KILN_OK;
}

static void init_builtins(void)
{
    char msg[512];
    int n = 0;
    while (kiln__plugin_builtin_classes[n]) n++;
    if (!n) return;
    pthread_mutex_lock(&g_lock);
    /* A built-in class that does not validate is a kiln bug; it is left out
     * rather than stopping every program (tests catch it). */
    for (int i = 0; i < n; i++) add_classes(&kiln__plugin_builtin_classes[i], 1, "built-in", msg, sizeof msg);
    pthread_mutex_unlock(&g_lock);
}

static void ensure_init(void) { pthread_once(&g_once, init_builtins); }

kiln_status kiln_plugin_register(const struct kiln_plugin_class *cls)
{
    ensure_init();
    char msg[512] = "";
    pthread_mutex_lock(&g_lock);
    kiln_status s = add_classes(&cls, 1, "kiln_plugin_register", msg, sizeof msg);
    pthread_mutex_unlock(&g_lock);
    if (s) {
        char full[700];
        snprintf(full, sizeof full, "plugin registration refused: %s", msg);
        kiln__set_last_error(full);
    }
    return s;
}

kiln_status kiln_plugin_load(const char *path)
{
    ensure_init();
    char full[1400];
    if (!path || !*path) {
        kiln__set_last_error("plugin library: empty path");
        return KILN_ERR_INVALID_ARG;
    }
    /* dlopen searches LD_LIBRARY_PATH for a bare name; a path with '/' is taken as is. */
    void *h = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    if (!h) {
        const char *why = dlerror();
        snprintf(full, sizeof full, "plugin library '%s' cannot be loaded: %s", path, why ? why : "unknown reason");
        kiln__set_last_error(full);
        return KILN_ERR_IO;
    }
    dlerror();
    void *sym = dlsym(h, KILN_PLUGIN_ENTRY_SYMBOL);
    if (!sym) {
        snprintf(full, sizeof full, "plugin library '%s' has no '%s' function: it is not a kiln plugin (see include/kiln_plugin.h)", path,
                 KILN_PLUGIN_ENTRY_SYMBOL);
        kiln__set_last_error(full);
        dlclose(h);
        return KILN_ERR_NOT_FOUND;
    }
    kiln_plugin_entry_fn entry_fn;
    memcpy(&entry_fn, &sym, sizeof entry_fn); /* object to function pointer, as POSIX allows */
    const kiln_plugin_class *const *cls = NULL;
    int count = 0;
    char perr[512] = "";
    int rc = entry_fn(KILN_PLUGIN_ABI_VERSION, &cls, &count, perr, sizeof perr);
    perr[sizeof perr - 1] = 0;
    if (rc != KILN_PLUGIN_OK) {
        snprintf(full, sizeof full, "plugin library '%s' refused to register (code %d): %s", path, rc, perr[0] ? perr : "no message");
        kiln__set_last_error(full);
        dlclose(h);
        return rc == KILN_PLUGIN_ERR_ABI ? KILN_ERR_UNSUPPORTED : KILN_ERR_INVALID_ARG;
    }
    if (!cls) count = 0;
    char msg[512] = "";
    pthread_mutex_lock(&g_lock);
    kiln_status s = add_classes(cls, count, path, msg, sizeof msg);
    pthread_mutex_unlock(&g_lock);
    if (s) {
        snprintf(full, sizeof full, "plugin library '%s' rejected: %s", path, msg);
        kiln__set_last_error(full);
        dlclose(h);
        return s;
    }
    /* registered classes point into the library: it stays loaded */
    return KILN_OK;
}

int kiln_plugin_count(void)
{
    ensure_init();
    return __atomic_load_n(&g_n, __ATOMIC_ACQUIRE);
}

kiln_status kiln_plugin_get(int i, const char **name, const char **version, const char **plugin_namespace)
{
    int n = kiln_plugin_count();
    if (i < 0 || i >= n) return KILN_ERR_INVALID_ARG;
    const kiln_plugin_class *c = g_entries[i].cls;
    if (name) *name = c->name;
    if (version) *version = kiln__plugin_version(c);
    if (plugin_namespace) *plugin_namespace = kiln__plugin_namespace(c);
    return KILN_OK;
}

/* --- lookup -------------------------------------------------------------- */

void kiln__plugin_list_str(char *buf, size_t len)
{
    int n = kiln_plugin_count();
    if (!len) return;
    buf[0] = 0;
    if (!n) {
        snprintf(buf, len, "no plugins loaded");
        return;
    }
    size_t pos = (size_t)snprintf(buf, len, "plugins loaded: ");
    for (int i = 0; i < n && pos < len; i++) {
        char id[512];
        kiln__plugin_id_str(g_entries[i].cls, id, sizeof id);
        pos += (size_t)snprintf(buf + pos, len - pos, "%s%s", i ? ", " : "", id);
    }
}

kiln_status kiln__plugin_unknown_op(kiln_err *err, const kiln_node *n)
{
    char list[700];
    kiln__plugin_list_str(list, sizeof list);
    return kiln__fail(err, KILN_ERR_UNSUPPORTED, "node '%s': op %s%s%s is not a kiln op and no loaded plugin provides it (%s; load one with --plugins=LIB)",
                      n->name, n->domain && n->domain[0] ? n->domain : "", n->domain && n->domain[0] ? "::" : "", n->op_type, list);
}

/* A string attribute's value, or an INT one printed; NULL when absent. */
static const char *attr_str(const kiln_node *n, const char *name, char *tmp, size_t len)
{
    const kiln_attr *a = kiln__node_attr(n, name);
    if (!a) return NULL;
    if (a->type == KILN_ATTR_STRING) return a->s ? a->s : "";
    if (a->type == KILN_ATTR_INT) {
        snprintf(tmp, len, "%lld", (long long)a->i);
        return tmp;
    }
    return NULL;
}

static int find_index(const kiln_node *n)
{
    int cnt = kiln_plugin_count();
    char vb[32], nb[32];
    const char *ver = attr_str(n, "plugin_version", vb, sizeof vb);
    const char *ns = attr_str(n, "plugin_namespace", nb, sizeof nb);
    /* namespaces to try: the attribute; else the node's domain, then "" */
    const char *try_ns[2] = {ns, NULL};
    int n_try = 1;
    if (!ns) {
        int k = 0;
        if (n->domain && n->domain[0] && strcmp(n->domain, "ai.onnx")) try_ns[k++] = n->domain;
        try_ns[k++] = "";
        n_try = k;
    }
    for (int t = 0; t < n_try; t++)
        for (int i = 0; i < cnt; i++) {
            const kiln_plugin_class *c = g_entries[i].cls;
            if (strcmp(c->name, n->op_type)) continue;
            if (ver && strcmp(kiln__plugin_version(c), ver)) continue;
            if (strcmp(kiln__plugin_namespace(c), try_ns[t])) continue;
            return i;
        }
    return -1;
}

const kiln_op_schema *kiln__plugin_schema_for_node(const kiln_node *n)
{
    int i = find_index(n);
    return i >= 0 ? &g_entries[i].schema : NULL;
}

const kiln_plugin_class *kiln__plugin_class_for_node(const kiln_node *n)
{
    int i = find_index(n);
    return i >= 0 ? g_entries[i].cls : NULL;
}

const kiln_plugin_class *kiln__plugin_schema_class(const kiln_op_schema *s)
{
    /* a plugin schema is one of the entries' (pointer inside the array) */
    if (!s || (const char *)s < (const char *)g_entries || (const char *)s >= (const char *)(g_entries + MAX_CLASSES)) return NULL;
    const entry *e = (const entry *)((const char *)s - offsetof(entry, schema));
    return e->cls;
}

bool kiln__plugin_name_registered(const char *name)
{
    int cnt = kiln_plugin_count();
    for (int i = 0; i < cnt; i++)
        if (!strcmp(g_entries[i].cls->name, name)) return true;
    return false;
}

const kiln_plugin_class *kiln__plugin_find_exact(const char *name, const char *version, const char *ns)
{
    int cnt = kiln_plugin_count();
    for (int i = 0; i < cnt; i++) {
        const kiln_plugin_class *c = g_entries[i].cls;
        if (!strcmp(c->name, name) && !strcmp(kiln__plugin_version(c), version) && !strcmp(kiln__plugin_namespace(c), ns)) return c;
    }
    return NULL;
}
