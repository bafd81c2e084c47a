/*
 * Builds a small super-resolution network by hand with the network API (no
 * ONNX), the shape of Real-ESRGAN's SRVGGNetCompact: conv + PReLU body, a
 * conv to 3*r*r channels, PixelShuffle, plus the nearest-upsampled input.
 * Runs it on the reference backend on a generated image and writes the
 * input and the result as PPM files.
 *
 *   example_tiny_sr [OUT_DIR] [HEIGHT WIDTH]
 */
#include "kiln.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define FEAT 16
#define SCALE 2

static uint32_t rng = 12345;
static float frand(void)
{
    rng = rng * 1664525u + 1013904223u;
    return (float)((rng >> 8) & 0xffff) / 65536.0f - 0.5f;
}

static int add_weights(kiln_network *net, const char *name, int cout, int cin, int k)
{
    int64_t dims[4] = {cout, cin, k, k};
    size_t n = (size_t)cout * (size_t)cin * (size_t)k * (size_t)k;
    float *w = malloc(n * sizeof *w);
    if (!w) return -1;
    float scale = 1.0f / (float)(cin * k * k);
    for (size_t i = 0; i < n; i++) w[i] = frand() * 2.0f * scale * 3.0f;
    kiln_status s = kiln_network_add_constant(net, name, KILN_DT_FLOAT, 4, dims, w, n * sizeof *w);
    free(w);
    return s;
}

static int add_vector(kiln_network *net, const char *name, int n, float base, int rank3)
{
    int64_t dims[3] = {n, 1, 1};
    float v[64];
    for (int i = 0; i < n; i++) v[i] = base + 0.05f * frand();
    return kiln_network_add_constant(net, name, KILN_DT_FLOAT, rank3 ? 3 : 1, dims, v, (size_t)n * sizeof(float));
}

static int write_ppm(const char *path, const kiln_host_tensor *t)
{
    int64_t h = t->dims[2], w = t->dims[3];
    FILE *f = fopen(path, "wb");
    if (!f) return -1;
    fprintf(f, "P6\n%lld %lld\n255\n", (long long)w, (long long)h);
    const float *p = t->data;
    for (int64_t y = 0; y < h; y++)
        for (int64_t x = 0; x < w; x++)
            for (int c = 0; c < 3; c++) {
                float v = p[((int64_t)c * h + y) * w + x] * 255.0f + 0.5f;
                fputc(v < 0 ? 0 : v > 255 ? 255 : (int)v, f);
            }
    return fclose(f);
}

#define CHECK(call)                                                                   \
    do {                                                                              \
        if ((call) != KILN_OK) {                                                      \
            fprintf(stderr, "tiny_sr: %s\n", net ? kiln_network_last_error(net) : kiln_last_error()); \
            return 1;                                                                 \
        }                                                                             \
    } while (0)

int main(int argc, char **argv)
{
    const char *out_dir = argc > 1 ? argv[1] : NULL;
    int64_t H = argc > 3 ? atoll(argv[2]) : 64, W = argc > 3 ? atoll(argv[3]) : 96;
    if (H < 1 || W < 1 || H > 4096 || W > 4096) {
        fprintf(stderr, "tiny_sr: HEIGHT and WIDTH must be 1..4096\n");
        return 1;
    }
    kiln_network *net = NULL;
    CHECK(kiln_network_create(&net));
    int64_t in_dims[4] = {1, 3, KILN_DIM_SYMBOLIC, KILN_DIM_SYMBOLIC};
    const char *syms[4] = {NULL, NULL, "height", "width"};
    CHECK(kiln_network_add_input(net, "image", KILN_DT_FLOAT, 4, in_dims, syms));
    CHECK(add_weights(net, "body0.w", FEAT, 3, 3));
    CHECK(add_vector(net, "body0.b", FEAT, 0.0f, 0));
    CHECK(add_vector(net, "body0.slope", FEAT, 0.25f, 1));
    CHECK(kiln_network_add_conv(net, "body0", "image", "body0.w", "body0.b", 3, 3, 1, 1, 1, 1, "f0"));
    CHECK(kiln_network_add_prelu(net, "body0.act", "f0", "body0.slope", "a0"));
    CHECK(add_weights(net, "body1.w", FEAT, FEAT, 3));
    CHECK(add_vector(net, "body1.b", FEAT, 0.0f, 0));
    CHECK(add_vector(net, "body1.slope", FEAT, 0.25f, 1));
    CHECK(kiln_network_add_conv(net, "body1", "a0", "body1.w", "body1.b", 3, 3, 1, 1, 1, 1, "f1"));
    CHECK(kiln_network_add_prelu(net, "body1.act", "f1", "body1.slope", "a1"));
    CHECK(add_weights(net, "tail.w", 3 * SCALE * SCALE, FEAT, 3));
    CHECK(add_vector(net, "tail.b", 3 * SCALE * SCALE, 0.0f, 0));
    CHECK(kiln_network_add_conv(net, "tail", "a1", "tail.w", "tail.b", 3, 3, 1, 1, 1, 1, "t"));
    CHECK(kiln_network_add_pixel_shuffle(net, "shuffle", "t", SCALE, "residual"));
    CHECK(kiln_network_add_resize_nearest(net, "base", "image", (float)SCALE, "upsampled"));
    CHECK(kiln_network_add_elementwise(net, "add", "Add", "residual", "upsampled", "output"));
    CHECK(kiln_network_mark_output(net, "output"));

    CHECK(kiln_network_infer_shapes(net));
    char desc[256];
    kiln_network_describe_tensor(net, "output", desc, sizeof desc);
    printf("tiny_sr: %d nodes, output %s\n", kiln_network_node_count(net), desc);

    /* a smooth colour gradient with a ring, so the result is easy to look at */
    kiln_host_tensor in = {.dtype = KILN_DT_FLOAT, .rank = 4, .dims = {1, 3, H, W}};
    snprintf(in.name, sizeof in.name, "image");
    in.nbytes = (size_t)(3 * H * W) * sizeof(float);
    float *px = malloc(in.nbytes);
    if (!px) return 1;
    for (int64_t y = 0; y < H; y++)
        for (int64_t x = 0; x < W; x++) {
            float dx = (float)x - (float)W / 2, dy = (float)y - (float)H / 2;
            float ring = (dx * dx + dy * dy) < (float)(H * H) / 9.0f ? 0.3f : 0.0f;
            px[(0 * H + y) * W + x] = (float)x / (float)W;
            px[(1 * H + y) * W + x] = (float)y / (float)H;
            px[(2 * H + y) * W + x] = ring + 0.2f;
        }
    in.data = px;
    kiln_host_tensor out;
    memset(&out, 0, sizeof out);
    CHECK(kiln_reference_run(net, 1, &in, 1, &out));
    char type[128];
    snprintf(type, sizeof type, "[%lld,%lld,%lld,%lld]", (long long)out.dims[0], (long long)out.dims[1],
             (long long)out.dims[2], (long long)out.dims[3]);
    double sum = 0;
    for (int64_t i = 0; i < kiln_host_tensor_numel(&out); i++) sum += ((float *)out.data)[i];
    printf("tiny_sr: input [1,3,%lld,%lld] -> output %s, mean %.6f\n", (long long)H, (long long)W, type,
           sum / (double)kiln_host_tensor_numel(&out));
    int rc = 0;
    if (out_dir) {
        char path[4096];
        snprintf(path, sizeof path, "%s/tiny_sr_input.ppm", out_dir);
        rc |= write_ppm(path, &in);
        snprintf(path, sizeof path, "%s/tiny_sr_output.ppm", out_dir);
        rc |= write_ppm(path, &out);
        if (rc) fprintf(stderr, "tiny_sr: cannot write into '%s'\n", out_dir);
        else printf("tiny_sr: wrote %s/tiny_sr_input.ppm and tiny_sr_output.ppm\n", out_dir);
    }
    free(px);
    kiln_host_tensor_release(&out);
    kiln_network_free(net);
    return rc ? 1 : 0;
}
