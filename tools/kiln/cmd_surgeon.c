/*
 * kiln surgeon: clean and edit ONNX graphs and write them back as ONNX
 * (polygraphy surgeon / onnx-graphsurgeon for C users). Every subcommand reads
 * IN, edits it through the public API (kiln.h, kiln_graph.h) and writes OUT
 * atomically: on any failure no output file is left behind.
 */
#include "cli.h"
#include "kiln_graph.h"
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_LIST 64

static void surgeon_usage(void)
{
    printf("usage: kiln surgeon <subcommand> IN -o OUT [options]\n"
           "\n"
           "  sanitize IN -o OUT [--fold-constants] [--cleanup] [--toposort]\n"
           "           [--override-input-shapes=name:1x3x270x480[,...]] [--num-passes=N]\n"
           "      fold every subgraph whose leaves are constants (shape computations on static shapes\n"
           "      too, evaluated by the CPU reference), remove dead nodes / unused initializers and\n"
           "      inputs, sort; repeated until nothing changes (or N rounds)\n"
           "  extract IN -o OUT --inputs=a,b --outputs=c      the subgraph between named tensors\n"
           "  replace-op IN -o OUT (--node=NAME | --op=TYPE) --with=TYPE [--domain=D] [--attr=k=v ...]\n"
           "      give nodes another op (e.g. a plugin's), keeping inputs, outputs and attributes\n"
           "  set-attr IN -o OUT --node=NAME --attr=k=v [--attr=...]\n"
           "      value types: 3 (int), 0.5 (float), 1,2 (ints), 0.5,1 (floats), text (string),\n"
           "      or explicit: k:int=3 k:float=3 k:string=3 k:ints=1,2 k:floats=1,2\n"
           "  remove-node IN -o OUT --node=NAME        bypass a node with one data input\n"
           "  rename IN -o OUT --tensor=OLD=NEW [--tensor=...]\n"
           "\n"
           "  every subcommand: --external-data[=BYTES]  initializers of at least BYTES (default 1024)\n"
           "                    go to OUT.data beside OUT\n");
}

typedef struct common_opts {
    const char *in, *out;
    int external;
    long long threshold;
} common_opts;

/* Handles IN, -o/--output and --external-data: 1 consumed, 0 not ours, -1 error printed. */
static int common_flag(common_opts *c, const char *sub, int argc, char **argv, int *i)
{
    const char *a = argv[*i], *v;
    int r;
    if ((r = cli_flag_value(argc, argv, i, "-o", &v)) || (r = cli_flag_value(argc, argv, i, "--output", &v))) {
        if (r < 0) return -1;
        if (c->out) {
            cli_error("surgeon %s: more than one output ('%s' and '%s')", sub, c->out, v);
            return -1;
        }
        c->out = v;
        return 1;
    }
    if (!strcmp(a, "--external-data")) {
        c->external = 1;
        return 1;
    }
    if (!strncmp(a, "--external-data=", 16)) {
        c->external = 1;
        return cli_parse_int("--external-data", a + 16, 1, (long long)1 << 40, &c->threshold) ? -1 : 1;
    }
    if (a[0] == '-') return 0;
    if (c->in) {
        cli_error("surgeon %s: unexpected argument '%s' (one model only)", sub, a);
        return -1;
    }
    c->in = a;
    return 1;
}

static int check_common(const common_opts *c, const char *sub)
{
    if (!c->in) {
        cli_error("surgeon %s: no model given (kiln surgeon --help)", sub);
        return 2;
    }
    if (!c->out) {
        cli_error("surgeon %s: no output given (-o OUT)", sub);
        return 2;
    }
    return 0;
}

static int load(const common_opts *c, kiln_network **net)
{
    if (kiln_onnx_parse(c->in, NULL, net)) return cli_error("%s", kiln_last_error());
    return 0;
}

/* Shapes refreshed for the value_info the writer gives, then written atomically. */
static int save(const common_opts *c, kiln_network *net)
{
    if (kiln_network_infer_shapes(net))
        printf("[W] %s (types of the tensors it could not infer are left out)\n",
               kiln_network_last_error(net));
    kiln_onnx_write_options wo = {.struct_size = sizeof wo, .external_data = c->external,
                                  .external_threshold = (size_t)c->threshold};
    if (kiln_onnx_write(net, c->out, &wo)) return cli_error("%s", kiln_last_error());
    printf("[I] wrote %s (%d nodes)%s\n", c->out, kiln_network_node_count(net),
           c->external ? " (initializers over the threshold in an external data file beside it)" : "");
    return 0;
}

/* Splits "a,b,c" into up to MAX_LIST entries (pointers into buf, a copy). */
static int split_list(const char *flag, const char *spec, char *buf, size_t len, const char **items, int *n)
{
    if (strlen(spec) >= len) return cli_error("%s: list too long", flag);
    snprintf(buf, len, "%s", spec);
    *n = 0;
    char *p = buf;
    for (;;) {
        char *comma = strchr(p, ',');
        if (comma) *comma = 0;
        if (!*p) return cli_error("%s: empty name in '%s'", flag, spec);
        if (*n == MAX_LIST) return cli_error("%s: more than %d names", flag, MAX_LIST);
        items[(*n)++] = p;
        if (!comma) break;
        p = comma + 1;
    }
    return 0;
}

/* --- attributes ------------------------------------------------------------- */

typedef struct parsed_attr {
    char name[256];
    kiln_attr_type type;
    int64_t i;
    float f;
    char *s;
    int64_t *ints;
    float *floats;
    int64_t n;
} parsed_attr;

static void parsed_attr_free(parsed_attr *a)
{
    free(a->s);
    free(a->ints);
    free(a->floats);
    memset(a, 0, sizeof *a);
}

/* [s, end) as an int64 (into *i) or, when i is NULL, a finite float32 (into *f). */
static bool parse_number(const char *s, const char *end, int64_t *i, float *f)
{
    char buf[64], *e;
    if (s == end || end - s >= (long)sizeof buf) return false;
    memcpy(buf, s, (size_t)(end - s));
    buf[end - s] = 0;
    errno = 0;
    if (i) {
        long long x = strtoll(buf, &e, 10);
        if (*e || errno) return false;
        *i = x;
        return true;
    }
    double x = strtod(buf, &e);
    if (*e || errno || !isfinite(x) || fabs(x) > 3.4e38) return false;
    *f = (float)x;
    return true;
}

static bool parse_i64(const char *s, const char *end, int64_t *v) { return parse_number(s, end, v, NULL); }
static bool parse_f32(const char *s, const char *end, float *v) { return parse_number(s, end, NULL, v); }

/* Drops a half-parsed list, keeping the name (the value is tried as another type next). */
static void drop_lists(parsed_attr *a)
{
    free(a->ints);
    free(a->floats);
    a->ints = NULL;
    a->floats = NULL;
    a->n = 0;
}

/* A comma list of ints or floats into a; false when an entry is not one. */
static bool parse_list(const char *v, bool as_float, parsed_attr *a)
{
    int64_t n = 1;
    for (const char *p = v; *p; p++) n += *p == ',';
    if (n > (1 << 20)) return false;
    if (as_float) a->floats = calloc((size_t)n, sizeof(float));
    else a->ints = calloc((size_t)n, sizeof(int64_t));
    if (!a->floats && !a->ints) return false;
    const char *p = v;
    for (int64_t k = 0; k < n; k++) {
        const char *e = strchr(p, ',');
        if (!e) e = p + strlen(p);
        if (as_float ? !parse_f32(p, e, &a->floats[k]) : !parse_i64(p, e, &a->ints[k])) return false;
        p = *e ? e + 1 : e;
    }
    a->n = n;
    a->type = as_float ? KILN_ATTR_FLOATS : KILN_ATTR_INTS;
    return true;
}

/* "k=v" or "k:type=v"; error printed. */
static int parse_attr(const char *spec, parsed_attr *a)
{
    memset(a, 0, sizeof *a);
    const char *eq = strchr(spec, '=');
    if (!eq || eq == spec) return cli_error("--attr: '%s' is not NAME=VALUE", spec);
    const char *colon = memchr(spec, ':', (size_t)(eq - spec));
    const char *name_end = colon ? colon : eq;
    if ((size_t)(name_end - spec) >= sizeof a->name || name_end == spec)
        return cli_error("--attr: bad attribute name in '%s'", spec);
    memcpy(a->name, spec, (size_t)(name_end - spec));
    const char *v = eq + 1, *end = v + strlen(v);
    char type[16] = "";
    if (colon) {
        if ((size_t)(eq - colon - 1) >= sizeof type) return cli_error("--attr: unknown type in '%s'", spec);
        memcpy(type, colon + 1, (size_t)(eq - colon - 1));
    }
    bool ok;
    if (!strcmp(type, "int")) {
        a->type = KILN_ATTR_INT;
        ok = parse_i64(v, end, &a->i);
    } else if (!strcmp(type, "float")) {
        a->type = KILN_ATTR_FLOAT;
        ok = parse_f32(v, end, &a->f);
    } else if (!strcmp(type, "string")) {
        a->type = KILN_ATTR_STRING;
        ok = (a->s = strdup(v)) != NULL;
    } else if (!strcmp(type, "ints")) {
        ok = *v && parse_list(v, false, a);
    } else if (!strcmp(type, "floats")) {
        ok = *v && parse_list(v, true, a);
    } else if (type[0]) {
        return cli_error("--attr: unknown type '%s' in '%s' (int, float, string, ints, floats)", type, spec);
    } else if (parse_i64(v, end, &a->i)) {
        a->type = KILN_ATTR_INT;
        ok = true;
    } else if (parse_f32(v, end, &a->f) && strcmp(v, "inf") && strcmp(v, "nan")) {
        a->type = KILN_ATTR_FLOAT;
        ok = true;
    } else if (strchr(v, ',') && (parse_list(v, false, a) || (drop_lists(a), parse_list(v, true, a)))) {
        ok = true;
    } else {
        drop_lists(a);
        a->type = KILN_ATTR_STRING;
        ok = (a->s = strdup(v)) != NULL;
    }
    if (!ok) {
        parsed_attr_free(a);
        return cli_error("--attr: '%s': value '%s' is not a valid %s", spec, v, type[0] ? type : "value");
    }
    return 0;
}

static kiln_attr_value attr_value(const parsed_attr *a)
{
    kiln_attr_value v;
    memset(&v, 0, sizeof v);
    v.name = a->name;
    v.type = a->type;
    v.i = a->i;
    v.f = a->f;
    v.s = a->s;
    v.s_len = a->s ? strlen(a->s) : 0;
    v.ints = a->ints;
    v.floats = a->floats;
    v.n = a->n;
    return v;
}

static int set_attr(kiln_network *net, int node, const parsed_attr *a)
{
    kiln_status s;
    switch (a->type) {
    case KILN_ATTR_INT: s = kiln_graph_set_attr_int(net, node, a->name, a->i); break;
    case KILN_ATTR_FLOAT: s = kiln_graph_set_attr_float(net, node, a->name, a->f); break;
    case KILN_ATTR_STRING: s = kiln_graph_set_attr_string(net, node, a->name, a->s); break;
    case KILN_ATTR_INTS: s = kiln_graph_set_attr_ints(net, node, a->name, a->ints, a->n); break;
    case KILN_ATTR_FLOATS: s = kiln_graph_set_attr_floats(net, node, a->name, a->floats, a->n); break;
    default: return cli_error("--attr '%s': unsupported type", a->name);
    }
    return s ? cli_error("%s", kiln_network_last_error(net)) : 0;
}

/* Index of node `name`, or -1 with the error printed. */
static int find_node(const kiln_network *net, const char *name)
{
    int n = kiln_graph_find_node(net, name);
    if (n < 0) cli_error("no node named '%s' in the model", name);
    return n;
}

/* --- the steps every subcommand shares ------------------------------------------- */

/* A subcommand's own flags at argv[*i]: 1 consumed, 0 not one of them, -1 error printed. */
typedef int (*own_flag_fn)(void *args, int argc, char **argv, int *i);

/* The flag loop of subcommand `sub`: its own flags first, then IN, -o/--output and
 * --external-data. 0, or 2 (the usage exit code) with the error printed. */
static int parse_args(const char *sub, int argc, char **argv, own_flag_fn own, void *args, common_opts *c)
{
    for (int i = 1; i < argc; i++) {
        int r = own(args, argc, argv, &i);
        if (!r) r = common_flag(c, sub, argc, argv, &i);
        if (r < 0) return 2;
        if (!r) {
            cli_error("surgeon %s: unknown option '%s' (kiln surgeon --help)", sub, argv[i]);
            return 2;
        }
    }
    return check_common(c, sub);
}

/* Edits net in place, or sets *written to a new network that is written instead (extract);
 * 0 or 1 with the error printed. */
typedef int (*edit_fn)(void *args, kiln_network *net, kiln_network **written);

/* Loads IN, edits it and writes the result to OUT: 0 or 1 (error printed). */
static int edit_model(const common_opts *c, edit_fn edit, void *args)
{
    kiln_network *net = NULL, *written = NULL;
    int rc = 1;
    if (!load(c, &net)) {
        written = net;
        if (!edit(args, net, &written) && !save(c, written)) rc = 0;
    }
    if (written != net) kiln_network_free(written);
    kiln_network_free(net);
    return rc;
}

/* One --attr=k=v into attrs[*n]: 0, or -1 with the error printed. */
static int add_attr(const char *spec, parsed_attr *attrs, int *n)
{
    if (*n == MAX_LIST) {
        cli_error("--attr: more than %d", MAX_LIST);
        return -1;
    }
    if (parse_attr(spec, &attrs[*n])) return -1;
    (*n)++;
    return 0;
}

/* --- subcommands ------------------------------------------------------------------ */

typedef struct sanitize_args {
    kiln_sanitize_options so;
    cli_shape_list shapes;
    kiln_sanitize_report rep;
} sanitize_args;

static int sanitize_flag(void *args, int argc, char **argv, int *i)
{
    sanitize_args *s = args;
    const char *a = argv[*i], *v;
    long long n = 0;
    int r;
    if ((r = cli_flag_bool(a, "--fold-constants"))) s->so.fold_constants = 1;
    else if ((r = cli_flag_bool(a, "--cleanup"))) s->so.cleanup = 1;
    else if ((r = cli_flag_bool(a, "--toposort"))) s->so.toposort = 1;
    else if ((r = cli_flag_value(argc, argv, i, "--override-input-shapes", &v))) {
        if (r > 0 && cli_parse_shapes("--override-input-shapes", v, &s->shapes)) r = -1;
    } else if ((r = cli_flag_value(argc, argv, i, "--num-passes", &v))) {
        if (r > 0 && cli_parse_int("--num-passes", v, 1, 1000, &n)) r = -1;
        if (r > 0) s->so.num_passes = (int)n;
    }
    return r;
}

static int sanitize_edit(void *args, kiln_network *net, kiln_network **written)
{
    sanitize_args *s = args;
    (void)written;
    for (int k = 0; k < s->shapes.n; k++)
        if (kiln_graph_set_input_shape(net, s->shapes.v[k].name, s->shapes.v[k].rank, s->shapes.v[k].dims, NULL))
            return cli_error("--override-input-shapes: %s", kiln_network_last_error(net));
    s->so.struct_size = sizeof s->so;
    if (kiln_network_sanitize(net, &s->so, &s->rep)) return cli_error("sanitize: %s", kiln_network_last_error(net));
    return 0;
}

static void sanitize_report(void *args)
{
    const sanitize_args *s = args;
    const kiln_sanitize_report *rep = &s->rep;
    printf("[I] nodes: %d before, %d after (%d round%s)\n", rep->nodes_before, rep->nodes_after, rep->rounds,
           rep->rounds == 1 ? "" : "s");
    if (s->so.fold_constants) {
        printf("[I] folded %d node%s", rep->folded_nodes, rep->folded_nodes == 1 ? "" : "s");
        for (int k = 0; k < rep->n_ops; k++) printf("%s%s %d", k ? ", " : ": ", rep->op_type[k], rep->op_count[k]);
        printf("\n");
    }
    if (s->so.cleanup)
        printf("[I] cleanup removed %d node%s and %d unused initializer%s/input%s\n", rep->removed_nodes,
               rep->removed_nodes == 1 ? "" : "s", rep->removed_tensors, rep->removed_tensors == 1 ? "" : "s",
               rep->removed_tensors == 1 ? "" : "s");
}

typedef struct extract_args {
    const char *ins_spec, *outs_spec;
    const char *ins[MAX_LIST], *outs[MAX_LIST];
    int n_in, n_out;
} extract_args;

static int extract_flag(void *args, int argc, char **argv, int *i)
{
    extract_args *x = args;
    int r;
    if ((r = cli_flag_value(argc, argv, i, "--inputs", &x->ins_spec))) return r;
    return cli_flag_value(argc, argv, i, "--outputs", &x->outs_spec);
}

static int extract_edit(void *args, kiln_network *net, kiln_network **written)
{
    extract_args *x = args;
    kiln_network *sub = NULL;
    if (kiln_graph_extract(net, x->ins, x->n_in, x->outs, x->n_out, &sub))
        return cli_error("%s", kiln_last_error()); /* the library's text starts with "extract: " */
    *written = sub;
    return 0;
}

static int extract_check(void *args)
{
    extract_args *x = args;
    static char ibuf[8192], obuf[8192];
    if (!x->outs_spec) {
        cli_error("surgeon extract: --outputs=NAME[,NAME] is required");
        return 2;
    }
    if ((x->ins_spec && split_list("--inputs", x->ins_spec, ibuf, sizeof ibuf, x->ins, &x->n_in)) ||
        split_list("--outputs", x->outs_spec, obuf, sizeof obuf, x->outs, &x->n_out))
        return 2;
    return 0;
}

/* Replaces node `node` by op `with` keeping inputs, outputs and attributes, plus the --attr ones. */
static int replace_one(kiln_network *net, int node, const char *with, const char *domain, const parsed_attr *extra,
                       int n_extra)
{
    int n_in = kiln_graph_node_input_count(net, node), n_out = kiln_graph_node_output_count(net, node);
    int n_attr = kiln_graph_node_attr_count(net, node);
    char **ins = calloc((size_t)n_in + 1, sizeof *ins), **outs = calloc((size_t)n_out + 1, sizeof *outs);
    kiln_attr_value *av = calloc((size_t)(n_attr + n_extra) + 1, sizeof *av);
    kiln_host_tensor *tens = calloc((size_t)n_attr + 1, sizeof *tens);
    char **names = calloc((size_t)n_attr + 1, sizeof *names);
    int rc = 1, n_av = 0;
    if (!ins || !outs || !av || !tens || !names) {
        cli_error("out of memory");
        goto done;
    }
    /* Copies: the network's strings may move while it is edited. */
    for (int j = 0; j < n_in; j++)
        if (!(ins[j] = strdup(kiln_graph_node_input(net, node, j)))) goto oom;
    for (int j = 0; j < n_out; j++)
        if (!(outs[j] = strdup(kiln_graph_node_output(net, node, j)))) goto oom;
    for (int k = 0; k < n_attr; k++) {
        const char *an = kiln_graph_node_attr_name(net, node, k);
        bool overridden = false;
        for (int e = 0; e < n_extra; e++) overridden |= !strcmp(extra[e].name, an);
        if (overridden) continue;
        if (!(names[k] = strdup(an))) goto oom;
        kiln_attr_value v;
        if (kiln_graph_get_attr(net, node, an, &v)) {
            cli_error("%s", kiln_last_error());
            goto done;
        }
        if (v.type == KILN_ATTR_TENSOR && kiln_graph_get_attr_tensor(net, node, an, &tens[k])) {
            cli_error("%s", kiln_last_error());
            goto done;
        }
        if (v.type == KILN_ATTR_TENSOR) v.t = &tens[k];
        v.name = names[k];
        av[n_av++] = v;
    }
    for (int e = 0; e < n_extra; e++) av[n_av++] = attr_value(&extra[e]);
    if (kiln_graph_replace_node(net, node, NULL, with, domain, n_in, (const char *const *)ins, n_out,
                                (const char *const *)outs, n_av, av)) {
        cli_error("%s", kiln_network_last_error(net));
        goto done;
    }
    rc = 0;
    goto done;
oom:
    cli_error("out of memory");
done:
    for (int j = 0; ins && j < n_in; j++) free(ins[j]);
    for (int j = 0; outs && j < n_out; j++) free(outs[j]);
    for (int k = 0; tens && k < n_attr; k++) kiln_host_tensor_release(&tens[k]);
    for (int k = 0; names && k < n_attr; k++) free(names[k]);
    free(ins);
    free(outs);
    free(av);
    free(tens);
    free(names);
    return rc;
}

/* --node and --attr: set-attr's flags, and part of replace-op's. */
typedef struct node_attrs {
    const char *node;
    parsed_attr attrs[MAX_LIST];
    int n_attrs;
} node_attrs;

static int node_attrs_flag(void *args, int argc, char **argv, int *i)
{
    node_attrs *x = args;
    const char *v;
    int r;
    if ((r = cli_flag_value(argc, argv, i, "--node", &x->node))) return r;
    if ((r = cli_flag_value(argc, argv, i, "--attr", &v)) > 0 && add_attr(v, x->attrs, &x->n_attrs)) r = -1;
    return r;
}

static void node_attrs_release(void *args)
{
    node_attrs *x = args;
    for (int a = 0; a < x->n_attrs; a++) parsed_attr_free(&x->attrs[a]);
}

typedef struct replace_args {
    node_attrs na; /* first: node_attrs_release takes a replace_args too */
    const char *op, *with, *domain;
} replace_args;

static int replace_flag(void *args, int argc, char **argv, int *i)
{
    replace_args *x = args;
    int r;
    if ((r = node_attrs_flag(&x->na, argc, argv, i))) return r;
    if ((r = cli_flag_value(argc, argv, i, "--op", &x->op))) return r;
    if ((r = cli_flag_value(argc, argv, i, "--with", &x->with))) return r;
    return cli_flag_value(argc, argv, i, "--domain", &x->domain);
}

static int replace_edit(void *args, kiln_network *net, kiln_network **written)
{
    replace_args *x = args;
    (void)written;
    int replaced = 0;
    if (x->na.node) {
        int k = find_node(net, x->na.node);
        if (k < 0 || replace_one(net, k, x->with, x->domain, x->na.attrs, x->na.n_attrs)) return 1;
        replaced = 1;
    } else {
        /* Names first: replacing a node may renumber the others. */
        int n = kiln_graph_node_count(net);
        char **names = calloc((size_t)n + 1, sizeof *names);
        int m = 0;
        bool ok = names != NULL;
        for (int k = 0; ok && k < n; k++)
            if (!strcmp(kiln_graph_node_op(net, k), x->op) && !(names[m++] = strdup(kiln_graph_node_name(net, k))))
                ok = false;
        for (int k = 0; ok && k < m; k++) {
            int idx = kiln_graph_find_node(net, names[k]);
            if (idx < 0 || replace_one(net, idx, x->with, x->domain, x->na.attrs, x->na.n_attrs)) ok = false;
            else replaced++;
        }
        for (int k = 0; names && k < m; k++) free(names[k]);
        free(names);
        if (!ok) {
            if (!names) cli_error("out of memory");
            return 1;
        }
        if (!m) return cli_error("no node of op type '%s' in the model", x->op);
    }
    const char *domain = x->domain;
    printf("[I] %d node%s now %s%s%s\n", replaced, replaced == 1 ? "" : "s", domain && *domain ? domain : "",
           domain && *domain ? "::" : "", x->with);
    return 0;
}

static int replace_check(void *args)
{
    const replace_args *x = args;
    if (!x->na.node == !x->op) {
        cli_error("surgeon replace-op: give exactly one of --node=NAME and --op=TYPE");
        return 2;
    }
    if (!x->with) {
        cli_error("surgeon replace-op: --with=TYPE is required (the new op type)");
        return 2;
    }
    return 0;
}

static int set_attr_edit(void *args, kiln_network *net, kiln_network **written)
{
    node_attrs *x = args;
    (void)written;
    int k = find_node(net, x->node);
    if (k < 0) return 1;
    for (int a = 0; a < x->n_attrs; a++)
        if (set_attr(net, k, &x->attrs[a])) return 1;
    return 0;
}

static int set_attr_check(void *args)
{
    const node_attrs *x = args;
    if (!x->node || !x->n_attrs) {
        cli_error("surgeon set-attr: --node=NAME and at least one --attr=k=v are required");
        return 2;
    }
    return 0;
}

static int remove_node_flag(void *args, int argc, char **argv, int *i)
{
    return cli_flag_value(argc, argv, i, "--node", (const char **)args);
}

static int remove_node_edit(void *args, kiln_network *net, kiln_network **written)
{
    (void)written;
    int k = find_node(net, *(const char **)args);
    if (k < 0) return 1;
    if (kiln_graph_remove_node(net, k)) return cli_error("%s", kiln_network_last_error(net));
    return 0;
}

static int remove_node_check(void *args)
{
    if (!*(const char **)args) {
        cli_error("surgeon remove-node: --node=NAME is required");
        return 2;
    }
    return 0;
}

typedef struct rename_args {
    const char *specs[MAX_LIST];
    int n;
} rename_args;

static int rename_flag(void *args, int argc, char **argv, int *i)
{
    rename_args *x = args;
    const char *v;
    int r = cli_flag_value(argc, argv, i, "--tensor", &v);
    if (r <= 0) return r;
    if (x->n == MAX_LIST) {
        cli_error("--tensor: more than %d", MAX_LIST);
        return -1;
    }
    const char *eq = strchr(v, '=');
    if (!eq || eq == v || !eq[1]) {
        cli_error("--tensor: '%s' is not OLD=NEW", v);
        return -1;
    }
    x->specs[x->n++] = v;
    return 1;
}

static int rename_edit(void *args, kiln_network *net, kiln_network **written)
{
    rename_args *x = args;
    (void)written;
    for (int k = 0; k < x->n; k++) {
        const char *eq = strchr(x->specs[k], '=');
        char old[1024];
        snprintf(old, sizeof old, "%.*s", (int)(eq - x->specs[k]), x->specs[k]);
        if (kiln_graph_rename_tensor(net, old, eq + 1)) return cli_error("%s", kiln_network_last_error(net));
    }
    return 0;
}

static int rename_check(void *args)
{
    if (!((const rename_args *)args)->n) {
        cli_error("surgeon rename: --tensor=OLD=NEW is required");
        return 2;
    }
    return 0;
}

/* --- dispatch ---------------------------------------------------------------------- */

typedef struct subcommand {
    const char *name;
    own_flag_fn flag;
    int (*check)(void *args);     /* after the flags: required ones; 0 or 2 (error printed); may be NULL */
    edit_fn edit;
    void (*report)(void *args);   /* after writing; may be NULL */
    void (*release)(void *args);  /* may be NULL */
} subcommand;

/* Every subcommand's arguments; zeroed before its flags are read. */
typedef union sub_args {
    sanitize_args sanitize;
    extract_args extract;
    replace_args replace;
    node_attrs set_attr;
    const char *node;
    rename_args rename;
} sub_args;

/* Flags, checks, load, edit, write, report: exit code 0, 1 (failed) or 2 (usage). */
static int run_subcommand(const subcommand *s, int argc, char **argv)
{
    common_opts c = {0};
    static sub_args args; /* large (lists of shapes and attributes): off the stack */
    memset(&args, 0, sizeof args);
    int rc = parse_args(s->name, argc, argv, s->flag, &args, &c);
    if (!rc && s->check) rc = s->check(&args);
    if (!rc) rc = edit_model(&c, s->edit, &args);
    if (!rc && s->report) s->report(&args);
    if (s->release) s->release(&args);
    return rc;
}

int kiln_cmd_surgeon(int argc, char **argv)
{
    static const subcommand subs[] = {
        {"sanitize", sanitize_flag, NULL, sanitize_edit, sanitize_report, NULL},
        {"extract", extract_flag, extract_check, extract_edit, NULL, NULL},
        {"replace-op", replace_flag, replace_check, replace_edit, NULL, node_attrs_release},
        {"set-attr", node_attrs_flag, set_attr_check, set_attr_edit, NULL, node_attrs_release},
        {"remove-node", remove_node_flag, remove_node_check, remove_node_edit, NULL, NULL},
        {"rename", rename_flag, rename_check, rename_edit, NULL, NULL},
    };
    if (argc < 2) {
        cli_error("surgeon: no subcommand (sanitize, extract, replace-op, set-attr, remove-node, rename; kiln surgeon --help)");
        return 2;
    }
    if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") || !strcmp(argv[1], "help")) {
        surgeon_usage();
        return 0;
    }
    for (size_t i = 0; i < sizeof subs / sizeof subs[0]; i++)
        if (!strcmp(argv[1], subs[i].name)) {
            for (int k = 2; k < argc; k++)
                if (!strcmp(argv[k], "--help") || !strcmp(argv[k], "-h")) {
                    surgeon_usage();
                    return 0;
                }
            return run_subcommand(&subs[i], argc - 1, argv + 1);
        }
    cli_error("surgeon: unknown subcommand '%s' (sanitize, extract, replace-op, set-attr, remove-node, rename)", argv[1]);
    return 2;
}
