/*
 * fp16 rounding of convolution weights that keeps each filter's sum. Rounding every
 * weight to nearest leaves a per-filter sum error of up to k/2 ulps for k taps; for the
 * smooth, low-frequency part of an image (most of it) a conv reduces to that sum, so the
 * error feeds the next layer almost whole. Here each group of taps (one output channel x
 * one input channel of a k x k filter) is rounded to nearest first, then the taps whose
 * other fp16 neighbour moves the group's sum error toward zero are flipped, greedily, one
 * at a time, while that helps. Every weight still lands on one of its two fp16
 * neighbours (error below one ulp), and the group's sum error ends below one ulp of its
 * smallest flippable tap. Measured with the CPU reference and fp16 rounding emulated
 * (bench/RESULTS.md): realesr-general-x4v3's weight-rounding error 7.8e-4 -> 4.3e-4.
 */
#include "engine.h"
#include <math.h>
#include <string.h>

/* The fp16 neighbour of x on the other side of r (r = x rounded to nearest, r != x). */
static float other_neighbour(float x, float r)
{
    uint16_t h = kiln__f32_to_f16(r);
    bool up = x > r, neg = (h & 0x8000) != 0;
    if ((h & 0x7fff) == 0) return up ? kiln__f16_to_f32(0x0001) : kiln__f16_to_f32(0x8001);
    if ((h & 0x7c00) == 0x7c00) return r; /* inf: no other side */
    h = (uint16_t)(up != neg ? h + 1 : h - 1);
    float o = kiln__f16_to_f32(h);
    return isfinite(o) ? o : r;
}

void kiln__f16_round_groups(const float *src, float *dst, int64_t groups, int64_t taps)
{
    enum { MAX_TAPS = 64 };
    if (taps < 2 || taps > MAX_TAPS) {
        for (int64_t i = 0; i < groups * taps; i++) dst[i] = kiln__f16_to_f32(kiln__f32_to_f16(src[i]));
        return;
    }
    for (int64_t g = 0; g < groups; g++) {
        const float *x = src + g * taps;
        float *r = dst + g * taps;
        float o[MAX_TAPS];
        bool done[MAX_TAPS];
        double e = 0;
        bool finite = true;
        for (int64_t i = 0; i < taps; i++) {
            r[i] = kiln__f16_to_f32(kiln__f32_to_f16(x[i]));
            finite &= isfinite(r[i]) && isfinite(x[i]);
            o[i] = r[i] == x[i] || !finite ? r[i] : other_neighbour(x[i], r[i]);
            done[i] = false;
            e += (double)r[i] - (double)x[i];
        }
        if (!finite) continue; /* an inf or NaN filter: nearest, as plain conversion gives */
        for (;;) {
            int64_t best = -1;
            double best_e = fabs(e);
            for (int64_t i = 0; i < taps; i++) {
                if (done[i] || o[i] == r[i]) continue;
                double ne = fabs(e + (double)o[i] - (double)r[i]);
                if (ne < best_e) {
                    best_e = ne;
                    best = i;
                }
            }
            if (best < 0) break;
            e += (double)o[best] - (double)r[best];
            r[best] = o[best];
            done[best] = true;
        }
    }
}
