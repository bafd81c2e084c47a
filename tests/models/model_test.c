/*
 * Model tests: a whole model on the reference backend against a stored output.
 *
 *   kiln_model_test --fixture DIR [--max-abs E]    DIR/model.onnx + DIR/test_data_set_0
 *   kiln_model_test --light MODEL.onnx EXPECTED.pb  ONNX's light models: the input is
 *       arange(n).reshape(shape) / n as float32, symbolic dims set to 1 (ONNX's runner).
 */
#include "../common/compare.h"
#include "kiln.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int main(int argc, char **argv)
{
    if (argc >= 3 && !strcmp(argv[1], "--fixture")) {
        double max_abs = argc >= 5 && !strcmp(argv[3], "--max-abs") ? atof(argv[4]) : 1e-4;
        char path[4096];
        snprintf(path, sizeof path, "%s/model.onnx", argv[2]);
        kiln_network *net = NULL;
        if (kiln_onnx_parse(path, NULL, &net)) return test_fail(argv[2], kiln_last_error());
        return test_run_fixture(net, argv[2], max_abs);
    }
    if (argc == 4 && !strcmp(argv[1], "--light")) {
        kiln_network *net = NULL;
        if (kiln_onnx_parse(argv[2], NULL, &net)) return test_fail(argv[2], kiln_last_error());
        return test_run_light(net, argv[2], argv[3]);
    }
    fprintf(stderr, "usage: kiln_model_test --fixture DIR [--max-abs E] | --light MODEL.onnx EXPECTED.pb\n");
    return 2;
}
