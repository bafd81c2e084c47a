/* kiln run: run a model on the reference backend with inputs from files. */
#include "cli.h"
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define MAX_INPUTS 64

static double elem_f64(const kiln_host_tensor *t, int64_t i)
{
    switch (t->dtype) {
    case KILN_DT_FLOAT: return ((const float *)t->data)[i];
    case KILN_DT_DOUBLE: return ((const double *)t->data)[i];
    case KILN_DT_INT64: return (double)((const int64_t *)t->data)[i];
    case KILN_DT_INT32: return ((const int32_t *)t->data)[i];
    case KILN_DT_UINT8: case KILN_DT_BOOL: return ((const uint8_t *)t->data)[i];
    case KILN_DT_INT8: return ((const int8_t *)t->data)[i];
    default: return NAN;
    }
}

static void print_output(const kiln_host_tensor *t)
{
    char type[256];
    cli_format_tensor_type(t, type, sizeof type);
    int64_t n = kiln_host_tensor_numel(t);
    double mn = INFINITY, mx = -INFINITY, sum = 0;
    int64_t counted = 0;
    for (int64_t i = 0; i < n; i++) {
        double v = elem_f64(t, i);
        if (isnan(v)) continue;
        mn = v < mn ? v : mn;
        mx = v > mx ? v : mx;
        sum += v;
        counted++;
    }
    if (counted)
        printf("output '%s': %s  min %.6g  max %.6g  mean %.6g\n", t->name, type, mn, mx, sum / (double)counted);
    else
        printf("output '%s': %s\n", t->name, type);
}

int kiln_cmd_run(int argc, char **argv)
{
    const char *model = NULL, *inputs_dir = NULL, *save_dir = NULL, *backend = "cpu";
    const char *input_specs[MAX_INPUTS];
    int n_specs = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--inputs") && i + 1 < argc) inputs_dir = argv[++i];
        else if (!strcmp(a, "--input") && i + 1 < argc) {
            if (n_specs == MAX_INPUTS) return cli_error("too many --input flags (at most %d)", MAX_INPUTS);
            input_specs[n_specs++] = argv[++i];
        } else if (!strcmp(a, "--save-outputs") && i + 1 < argc) save_dir = argv[++i];
        else if (!strcmp(a, "--backend") && i + 1 < argc) backend = argv[++i];
        else if (a[0] == '-' ) return cli_error("run: unknown or incomplete option '%s'", a);
        else if (!model) model = a;
        else return cli_error("run: unexpected argument '%s' (one model only)", a);
    }
    if (!model) return cli_error("run: no model given (usage: kiln run MODEL [--inputs DIR | --input NAME=FILE ...])");
    if (strcmp(backend, "cpu")) return cli_error("run: unknown backend '%s' (available: cpu)", backend);
    if (inputs_dir && n_specs) return cli_error("run: give --inputs DIR or --input NAME=FILE, not both");
    /* Checked before loading and running: a long run must not end in "cannot write". */
    if (save_dir) {
        struct stat st;
        if (stat(save_dir, &st) != 0 || !S_ISDIR(st.st_mode))
            return cli_error("--save-outputs: '%s' is not a directory", save_dir);
        if (access(save_dir, W_OK | X_OK) != 0)
            return cli_error("--save-outputs: '%s' is not writable: %s", save_dir, strerror(errno));
    }

    kiln_network *net = NULL;
    if (kiln_onnx_parse(model, NULL, &net)) return cli_error("%s", kiln_last_error());
    int rc = 1;
    int n_in = kiln_network_input_count(net), n_out = kiln_network_output_count(net);
    kiln_host_tensor *in = calloc((size_t)n_in + (size_t)n_specs + 1, sizeof *in);
    kiln_host_tensor *out = calloc((size_t)n_out + 1, sizeof *out);
    int n_given = 0;
    if (!in || !out) {
        cli_error("out of memory");
        goto done;
    }
    if (inputs_dir) {
        for (int i = 0; i < n_in; i++) {
            char path[4096];
            snprintf(path, sizeof path, "%s/input_%d.pb", inputs_dir, i);
            if (cli_read_tensor(path, &in[i])) {
                cli_error("input '%s': %s", kiln_network_input_name(net, i), kiln_last_error());
                goto done;
            }
            n_given++;
            snprintf(in[i].name, sizeof in[i].name, "%s", kiln_network_input_name(net, i));
        }
    }
    for (int s = 0; s < n_specs; s++) {
        const char *eq = strchr(input_specs[s], '=');
        if (!eq || eq == input_specs[s] || !eq[1]) {
            cli_error("--input '%s': expected NAME=FILE", input_specs[s]);
            goto done;
        }
        size_t nl = (size_t)(eq - input_specs[s]);
        if (nl >= sizeof in[0].name) {
            cli_error("--input: name too long");
            goto done;
        }
        if (cli_read_tensor(eq + 1, &in[n_given])) {
            cli_error("--input '%.*s': %s", (int)nl, input_specs[s], kiln_last_error());
            goto done;
        }
        memcpy(in[n_given].name, input_specs[s], nl);
        in[n_given].name[nl] = 0;
        n_given++;
    }
    if (n_given != n_in) {
        char names[1024] = "";
        size_t pos = 0;
        for (int i = 0; i < n_in && pos < sizeof names; i++)
            pos += (size_t)snprintf(names + pos, sizeof names - pos, "%s'%s'", i ? ", " : "", kiln_network_input_name(net, i));
        cli_error("run: the model takes %d input(s) (%s), %d given", n_in, names, n_given);
        goto done;
    }
    if (kiln_reference_run(net, n_given, in, n_out, out)) {
        cli_error("%s", kiln_network_last_error(net));
        goto done;
    }
    for (int o = 0; o < n_out; o++) {
        print_output(&out[o]);
        if (save_dir) {
            char path[4096];
            snprintf(path, sizeof path, "%s/output_%d.npy", save_dir, o);
            if (kiln_tensor_write_npy(path, &out[o])) {
                cli_error("%s", kiln_last_error());
                goto done_out;
            }
        }
    }
    rc = 0;
done_out:
    for (int o = 0; o < n_out; o++) kiln_host_tensor_release(&out[o]);
done:
    for (int i = 0; i < n_given; i++) kiln_host_tensor_release(&in[i]);
    free(in);
    free(out);
    kiln_network_free(net);
    return rc;
}
