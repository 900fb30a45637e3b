/* Fused CPU kernels of the separator's fast path (asteroid_tdanet.native builds and loads them).
 *
 * Activations are contiguous time-major float32 arrays (batch, frames, channels), so every inner
 * loop runs over contiguous channels, in vectors of LANES floats that the compiler maps onto the
 * host's registers (built with -march=native at first use). Each kernel replaces several torch
 * passes over memory and their temporaries: TDANet's activations are 2 MiB per second of 8 kHz
 * audio, and memory traffic, not arithmetic, is what the elementwise part of a U-block costs.
 *
 * Work is split over `threads` OpenMP threads where it is large enough to pay for it; built
 * without OpenMP the pragmas are ignored. Statistics are accumulated in double. Values are not
 * assumed finite: NaN and infinity propagate as they do through torch's operations.
 */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>

/* The fewest elements a thread is given when a call is split between threads: smaller calls stay
 * on one thread. asteroid_tdanet.kernel_threads measures it on each machine at first use and
 * sets it (tdanet_set_grain); this default splits calls of half a second of 8 kHz audio at
 * 512 channels and more between two threads. */
static int64_t grain = 131072;

void tdanet_set_grain(int64_t elements) { grain = elements > 0 ? elements : 1; }

int64_t tdanet_grain(void) { return grain; }
/* Rows per block of the statistics, summed in float while in cache before they are merged in
 * double: float error over a block this short is far below float32's resolution of the result. */
#define BLOCK_ROWS 16
/* Channels per task of channel_moments(): its rows are read in blocks of this width. */
#define CHANNEL_BLOCK 64

/* GCC/Clang vector extensions: 8 floats, one AVX register on x86, two NEON registers on Arm. */
#define LANES 8
typedef float vfloat __attribute__((vector_size(4 * LANES)));
typedef int32_t vint __attribute__((vector_size(4 * LANES)));

static inline vfloat load(const float *p) {
    vfloat v;
    __builtin_memcpy(&v, p, sizeof v); /* unaligned */
    return v;
}

static inline void store(float *p, vfloat v) { __builtin_memcpy(p, &v, sizeof v); }

static inline vfloat splat(float x) { return (vfloat){0} + x; }

/* Lanes of a where mask is set (all ones), else of b. */
static inline vfloat blend(vint mask, vfloat a, vfloat b) {
    return (vfloat)(((vint)a & mask) | ((vint)b & ~mask));
}

/* exp(x) for x in [-87, 88] (callers clamp), relative error about 2e-7: 2^n exp(r) with
 * n = round(x / ln 2) and |r| <= ln(2) / 2, exp(r) by its degree-7 Taylor polynomial, r from
 * Cephes' two-part ln 2 so that it is exact to float precision. */
static inline vfloat vexp(vfloat x) {
    vfloat v = x * 1.44269504088896341f + 0.5f;
    vfloat n = __builtin_convertvector(__builtin_convertvector(v, vint), vfloat); /* trunc */
    n = n + __builtin_convertvector(n > v, vfloat); /* floor: true lanes are -1 */
    vfloat r = x - n * 0.693359375f + n * 2.12194440e-4f;
    vfloat p = splat(1.0f / 5040.0f);
    p = p * r + 1.0f / 720.0f;
    p = p * r + 1.0f / 120.0f;
    p = p * r + 1.0f / 24.0f;
    p = p * r + 1.0f / 6.0f;
    p = p * r + 0.5f;
    p = p * r + 1.0f;
    p = p * r + 1.0f;
    vint bits = (__builtin_convertvector(n, vint) + 127) << 23;
    return p * (vfloat)bits;
}

/* 1 / (1 + exp(-x)). Clamping exp's argument changes only results below 1e-37, which torch
 * returns as denormals or 0; NaN fails both comparisons and stays NaN through vexp. */
static inline vfloat vsigmoid(vfloat x) {
    vfloat e = -x;
    e = blend(e < -87.0f, splat(-87.0f), e);
    e = blend(e > 88.0f, splat(88.0f), e);
    return 1.0f / (1.0f + vexp(e));
}

static inline float sigmoid1(float x) {
    vfloat v = splat(x);
    return vsigmoid(v)[0];
}

static inline int threads_for(int64_t elements, int threads) {
    const int64_t most = elements / grain;
    return threads > 1 && most > 1 ? (int)(most < threads ? most : threads) : 1;
}

/* Running per-channel statistics: mean[c] and m2[c] (the sum of squared deviations from the
 * mean) of the rows seen so far. Rows are added a block at a time: the block (at most BLOCK_ROWS
 * rows, in cache) is centred on its own float mean c, its sums of x - c and (x - c)^2 taken in
 * float, and merged in double by Chan, Golub and LeVeque's update, which subtracts no large
 * numbers: a mean large against the spread costs no digits, and each float sum spans only rows
 * close to their own mean. */
static inline void merge(double *mean, double *m2, double block_mean, double block_m2,
                         double weight, double spread) {
    const double delta = block_mean - *mean;
    *mean += delta * weight;
    *m2 += block_m2 + delta * delta * spread;
}

/* merge()'s factors for `rows` new rows after `seen`: rows / n and seen rows / n (n the sum). */
static inline void merge_factors(int64_t seen, int64_t rows, double *weight, double *spread) {
    const double total = (double)(seen + rows);
    *weight = (double)rows / total;
    *spread = (double)seen * (double)rows / total;
}

/* The block's mean and m2 from its float centre and sums of d = x - centre and d^2, in double
 * (inv = 1 / rows), merged into mean, m2 (or stored, for the first block). */
static inline void add_block(double centre, double s1, double s2, double inv, int64_t seen,
                             double weight, double spread, double *mean, double *m2) {
    const double m = centre + s1 * inv, v = s2 - s1 * s1 * inv;
    if (seen == 0) {
        *mean = m;
        *m2 = v;
    } else {
        merge(mean, m2, m, v, weight, spread);
    }
}

/* Adds rows [0, rows) of channels [0, width), rows `stride` floats apart, to the statistics of
 * `seen` earlier rows (mean, m2 per channel; their values are ignored when seen is 0). */
static void add_rows(const float *x, int64_t rows, int64_t stride, int64_t width, int64_t seen,
                     double *mean, double *m2) {
    const float inv = 1.0f / (float)rows;
    const double inv_d = 1.0 / (double)rows;
    double weight, spread;
    merge_factors(seen, rows, &weight, &spread);
    const int64_t blocked = width - width % (4 * LANES);
    for (int64_t c0 = 0; c0 < blocked; c0 += 4 * LANES) {
        vfloat centre[4], s1[4], s2[4];
        for (int j = 0; j < 4; ++j) centre[j] = s1[j] = s2[j] = splat(0.0f);
        for (int64_t t = 0; t < rows; ++t)
            for (int j = 0; j < 4; ++j) centre[j] += load(x + t * stride + c0 + j * LANES);
        for (int j = 0; j < 4; ++j) centre[j] *= inv;
        for (int64_t t = 0; t < rows; ++t)
            for (int j = 0; j < 4; ++j) {
                vfloat d = load(x + t * stride + c0 + j * LANES) - centre[j];
                s1[j] += d;
                s2[j] += d * d;
            }
        for (int j = 0; j < 4; ++j)
            for (int l = 0; l < LANES; ++l) {
                const int64_t c = c0 + j * LANES + l;
                add_block(centre[j][l], s1[j][l], s2[j][l], inv_d, seen, weight, spread,
                          mean + c, m2 + c);
            }
    }
    for (int64_t c = blocked; c < width; ++c) {
        float centre = 0.0f, s1 = 0.0f, s2 = 0.0f;
        for (int64_t t = 0; t < rows; ++t) centre += x[t * stride + c];
        centre *= inv;
        for (int64_t t = 0; t < rows; ++t) {
            const float d = x[t * stride + c] - centre;
            s1 += d;
            s2 += d * d;
        }
        add_block(centre, s1, s2, inv_d, seen, weight, spread, mean + c, m2 + c);
    }
}

/* m2 (a sum of squared deviations over `rows` rows) -> the population variance, in place. */
static void to_variance(double *m2, int64_t count, int64_t rows) {
    for (int64_t i = 0; i < count; ++i) {
        const double s = m2[i] / (double)rows;
        m2[i] = s > 0.0 ? s : (s == s ? 0.0 : s); /* rounding may leave -0-ish; keep NaN */
    }
}

/* Per-channel mean and population variance over time: mean[b, c], var[b, c] of x[b, :, c].
 * One pass over memory: each block of rows is summed twice while it is in cache. */
static void channel_moments(const float *x, int64_t batch, int64_t frames, int64_t channels,
                            double *mean, double *var, int threads) {
    const int64_t groups = (channels + CHANNEL_BLOCK - 1) / CHANNEL_BLOCK;
#pragma omp parallel for collapse(2) num_threads(threads_for(batch * frames * channels, threads))
    for (int64_t b = 0; b < batch; ++b)
        for (int64_t k = 0; k < groups; ++k) {
            const int64_t c0 = k * CHANNEL_BLOCK;
            const int64_t width = channels - c0 < CHANNEL_BLOCK ? channels - c0 : CHANNEL_BLOCK;
            const float *xb = x + b * frames * channels + c0;
            double *mb = mean + b * channels + c0, *vb = var + b * channels + c0;
            for (int64_t t0 = 0; t0 < frames; t0 += BLOCK_ROWS) {
                const int64_t rows = frames - t0 < BLOCK_ROWS ? frames - t0 : BLOCK_ROWS;
                add_rows(xb + t0 * channels, rows, channels, width, t0, mb, vb);
            }
        }
    to_variance(var, batch * channels, frames);
}

/* Rows per chunk of a depthwise convolution that also returns its output's statistics: chunks
 * are the unit of work shared out between threads, each with statistics of its own, merged in
 * order at the end, so the result does not depend on the number of threads. */
#define CHUNK_ROWS 128

/* Output frame t of item b of a depthwise convolution (see tdanet_depthwise). */
static inline void depthwise_row(const float *xb, int64_t frames, int64_t channels,
                                 const float *w, const float *bias, int64_t kernel,
                                 int64_t stride, int64_t pad, int64_t t, float *o) {
    const int64_t blocked = channels - channels % (4 * LANES);
    const int64_t start = t * stride - pad;
    const int64_t k0 = start < 0 ? -start : 0;
    const int64_t k1 = frames - start < kernel ? frames - start : kernel;
    for (int64_t c0 = 0; c0 < blocked; c0 += 4 * LANES) {
        vfloat acc[4];
        for (int j = 0; j < 4; ++j) acc[j] = bias ? load(bias + c0 + j * LANES) : splat(0);
        for (int64_t k = k0; k < k1; ++k) {
            const float *row = xb + (start + k) * channels + c0;
            const float *wk = w + k * channels + c0;
            for (int j = 0; j < 4; ++j) acc[j] += load(wk + j * LANES) * load(row + j * LANES);
        }
        for (int j = 0; j < 4; ++j) store(o + c0 + j * LANES, acc[j]);
    }
    for (int64_t c = blocked; c < channels; ++c) {
        float acc = bias ? bias[c] : 0.0f;
        for (int64_t k = k0; k < k1; ++k) acc += w[k * channels + c] * xb[(start + k) * channels + c];
        o[c] = acc;
    }
}

/* Depthwise convolution along time with zero padding: out[b, t, c] = bias[c] +
 * sum_k w[k, c] * x[b, t * stride - pad + k, c]. w is (kernel, channels); bias may be NULL.
 * out must not overlap x. Row by row (the input rows a few outputs share stay in L1), four
 * vectors of channels at a time kept in registers across the taps: one store per output.
 * (Walking down time per block of channels with the taps in registers was slower: strided
 * rows defeat the prefetchers.)
 * With `moments` (else NULL), also the output's per-channel mean and population variance over
 * time, as channel_moments() gives them (moments[b, c], then moments[batch + b, c]), from each
 * block of rows while it is still in cache: the gLN that follows needs no pass of its own for
 * them. Returns 0, or -1 (nothing written) if the statistics' working memory cannot be had. */
int tdanet_depthwise(const float *x, int64_t batch, int64_t frames, int64_t channels,
                     const float *w, const float *bias, int64_t kernel, int64_t stride,
                     int64_t pad, int64_t out_frames, float *out, double *moments, int threads) {
    const int team = threads_for(batch * out_frames * channels * kernel / 4, threads);
    if (!moments) {
#pragma omp parallel for collapse(2) num_threads(team)
        for (int64_t b = 0; b < batch; ++b)
            for (int64_t t = 0; t < out_frames; ++t)
                depthwise_row(x + b * frames * channels, frames, channels, w, bias, kernel,
                              stride, pad, t, out + (b * out_frames + t) * channels);
        return 0;
    }
    const int64_t chunks = (out_frames + CHUNK_ROWS - 1) / CHUNK_ROWS;
    /* Each chunk's mean and m2 per channel. */
    double *scratch = malloc(sizeof(double) * 2 * batch * chunks * channels);
    if (!scratch) return -1;
#pragma omp parallel for collapse(2) num_threads(team)
    for (int64_t b = 0; b < batch; ++b)
        for (int64_t k = 0; k < chunks; ++k) {
            double *mean = scratch + 2 * (b * chunks + k) * channels, *m2 = mean + channels;
            const int64_t t1 = (k + 1) * CHUNK_ROWS < out_frames ? (k + 1) * CHUNK_ROWS : out_frames;
            for (int64_t t0 = k * CHUNK_ROWS; t0 < t1; t0 += BLOCK_ROWS) {
                const int64_t rows = t1 - t0 < BLOCK_ROWS ? t1 - t0 : BLOCK_ROWS;
                float *o = out + (b * out_frames + t0) * channels;
                for (int64_t t = 0; t < rows; ++t)
                    depthwise_row(x + b * frames * channels, frames, channels, w, bias, kernel,
                                  stride, pad, t0 + t, o + t * channels);
                add_rows(o, rows, channels, channels, t0 - k * CHUNK_ROWS, mean, m2);
            }
        }
    for (int64_t b = 0; b < batch; ++b) {
        double *mean = moments + b * channels, *var = moments + (batch + b) * channels;
        for (int64_t k = 0; k < chunks; ++k) {
            const double *cm = scratch + 2 * (b * chunks + k) * channels, *cv = cm + channels;
            const int64_t seen = k * CHUNK_ROWS;
            const int64_t rows = out_frames - seen < CHUNK_ROWS ? out_frames - seen : CHUNK_ROWS;
            double weight, spread;
            merge_factors(seen, rows, &weight, &spread);
            for (int64_t c = 0; c < channels; ++c) {
                if (k == 0) {
                    mean[c] = cm[c];
                    var[c] = cv[c];
                } else {
                    merge(mean + c, var + c, cm[c], cv[c], weight, spread);
                }
            }
        }
    }
    free(scratch);
    to_variance(moments + batch * channels, batch * channels, out_frames);
    return 0;
}

/* Flags of affine(): what is applied after the affine map, in this order. */
#define TDANET_GATE 1    /* r = r * gate[b, src[t], c] + value[b, src[t], c] */
#define TDANET_SIGMOID 2 /* r = sigmoid(r) */
#define TDANET_PRELU 4   /* r = r < 0 ? slope * r : r */

/* One row of affine(); inlined with `flags` a constant, so each combination of flags gets
 * its own loop without tests inside. */
static inline __attribute__((always_inline)) void affine_row(
    const float *xr, const float *hr, const float *sr, const float *fr, const float *gr,
    const float *vr, float slope, float *o, int64_t channels, const int32_t flags) {
    const int64_t blocked = channels - channels % LANES;
    for (int64_t c = 0; c < blocked; c += LANES) {
        vfloat r = (load(xr + c) - load(hr + c)) * load(sr + c) + load(fr + c);
        if (flags & TDANET_GATE) r = r * load(gr + c) + load(vr + c);
        if (flags & TDANET_SIGMOID) r = vsigmoid(r);
        if (flags & TDANET_PRELU) r = blend(r < 0.0f, r * slope, r);
        store(o + c, r);
    }
    for (int64_t c = blocked; c < channels; ++c) {
        float r = (xr[c] - hr[c]) * sr[c] + fr[c];
        if (flags & TDANET_GATE) r = r * gr[c] + vr[c];
        if (flags & TDANET_SIGMOID) r = sigmoid1(r);
        if ((flags & TDANET_PRELU) && r < 0.0f) r *= slope;
        o[c] = r;
    }
}

/* out[b, t, c] = f((x[b, t, c] - shift[b, c]) * scale[b, c] + offset[b, c]), f per `flags`;
 * gate and value have `sources` frames per item, src[t] picks one for output frame t (a
 * nearest-neighbour upsampling, or the identity). out may be x itself: each element is read
 * before it is written. */
static void affine(const float *x, int64_t batch, int64_t frames, int64_t channels,
                   const float *shift, const float *scale, const float *offset, const float *gate,
                   const float *value, int64_t sources, const int64_t *src, int32_t flags,
                   float slope, float *out, int threads) {
#pragma omp parallel for collapse(2) num_threads(threads_for(batch * frames * channels, threads))
    for (int64_t b = 0; b < batch; ++b)
        for (int64_t t = 0; t < frames; ++t) {
            const float *xr = x + (b * frames + t) * channels, *hr = shift + b * channels;
            const float *sr = scale + b * channels, *fr = offset + b * channels;
            const float *gr = flags & TDANET_GATE ? gate + (b * sources + src[t]) * channels : 0;
            const float *vr = flags & TDANET_GATE ? value + (b * sources + src[t]) * channels : 0;
            float *o = out + (b * frames + t) * channels;
            switch (flags) {
#define ROW(f) \
    case f: affine_row(xr, hr, sr, fr, gr, vr, slope, o, channels, f); break;
                ROW(0) ROW(1) ROW(2) ROW(3) ROW(4) ROW(5) ROW(6) ROW(7)
#undef ROW
            }
        }
}

/* gLN (normalisation over channels and time, per item) of z = pre_scale * y + pre_bias (per
 * channel; either may be NULL: 1 and 0), then affine()'s gate and activations. With mean_b and
 * var_b z[b]'s mean and variance, from y's per-channel moments m_c, v_c (law of total
 * variance), and a_c = gamma_c / sqrt(var_b + eps):
 *   r = (z - mean_b) a + beta = (y - m_c) (w_c a_c) + ((w_c m_c + p_c - mean_b) a_c + beta_c),
 * y centred per channel before scaling, so a mean large against the spread cancels nothing.
 * moments: y's per-channel means and variances as tdanet_depthwise() returns them, or NULL
 * (computed here). out_moments (flags 0 only, else NULL): the same for the result, which is then
 * an affine map of y per channel (mean (m_c - h_c) s_c + f_c, variance v_c s_c^2), so whatever
 * normalises it next needs no pass over it for them. out may be y. Returns 0, -1 (nothing
 * written) if a frame index in src is outside [0, sources), -2 (nothing written) if its working
 * memory cannot be had, or -3 (nothing written) if out_moments is asked for with flags. */
int tdanet_gln(const float *y, int64_t batch, int64_t frames, int64_t channels,
                const float *pre_scale, const float *pre_bias, const float *gamma,
                const float *beta, double eps, const float *gate, const float *value,
                int64_t sources, const int64_t *src, int32_t flags, float slope,
                const double *moments, double *out_moments, float *out, int threads) {
    if (out_moments && flags) return -3;
    if (flags & TDANET_GATE)
        for (int64_t t = 0; t < frames; ++t)
            if (src[t] < 0 || src[t] >= sources) return -1;
    /* Per item and channel: two doubles (statistics), three floats (the affine map). */
    double *scratch = malloc(sizeof(double) * 4 * batch * channels);
    if (!scratch) return -2;
    double *m = scratch, *v = scratch + batch * channels;
    float *shift = (float *)(scratch + 2 * batch * channels);
    float *scale = shift + batch * channels, *offset = scale + batch * channels;
    if (moments) {
        m = (double *)moments;
        v = m + batch * channels;
    } else {
        channel_moments(y, batch, frames, channels, m, v, threads);
    }
    for (int64_t b = 0; b < batch; ++b) {
        const double *mb = m + b * channels, *vb = v + b * channels;
        double mean = 0.0, within = 0.0, between = 0.0;
        for (int64_t c = 0; c < channels; ++c)
            mean += (pre_scale ? pre_scale[c] : 1.0) * mb[c] + (pre_bias ? pre_bias[c] : 0.0);
        mean /= (double)channels;
        for (int64_t c = 0; c < channels; ++c) {
            const double w = pre_scale ? pre_scale[c] : 1.0;
            const double d = w * mb[c] + (pre_bias ? pre_bias[c] : 0.0) - mean;
            within += w * w * vb[c];
            between += d * d;
        }
        const double inv = 1.0 / sqrt((within + between) / (double)channels + eps);
        for (int64_t c = 0; c < channels; ++c) {
            /* The offset is taken at the float shift actually subtracted. */
            const float h = (float)mb[c];
            const double w = pre_scale ? pre_scale[c] : 1.0, a = gamma[c] * inv;
            const double d = w * (double)h + (pre_bias ? pre_bias[c] : 0.0) - mean;
            shift[b * channels + c] = h;
            scale[b * channels + c] = (float)(w * a);
            offset[b * channels + c] = (float)(d * a + beta[c]);
        }
    }
    if (out_moments) /* from the float factors affine() applies */
        for (int64_t i = 0; i < batch * channels; ++i) {
            const double s = scale[i];
            out_moments[i] = (m[i] - (double)shift[i]) * s + (double)offset[i];
            out_moments[batch * channels + i] = v[i] * s * s;
        }
    affine(y, batch, frames, channels, shift, scale, offset, gate, value, sources, src, flags,
           slope, out, threads);
    free(scratch);
    return 0;
}

/* out[b, j, c] += mean of x[b, t, c] over torch's adaptive-average-pooling window of output
 * frame j: t in [floor(j T / J), ceil((j + 1) T / J)). */
void tdanet_pool_add(const float *x, int64_t batch, int64_t frames, int64_t channels,
                     int64_t out_frames, float *out, int threads) {
    const int64_t blocked = channels - channels % LANES;
#pragma omp parallel for collapse(2) num_threads(threads_for(batch * frames * channels, threads))
    for (int64_t b = 0; b < batch; ++b)
        for (int64_t j = 0; j < out_frames; ++j) {
            const int64_t t0 = j * frames / out_frames;
            const int64_t t1 = ((j + 1) * frames + out_frames - 1) / out_frames;
            const float inv = 1.0f / (float)(t1 - t0);
            const float *xb = x + b * frames * channels;
            float *o = out + (b * out_frames + j) * channels;
            for (int64_t c = 0; c < blocked; c += LANES) {
                vfloat acc = splat(0.0f);
                for (int64_t t = t0; t < t1; ++t) acc += load(xb + t * channels + c);
                store(o + c, load(o + c) + acc * inv);
            }
            for (int64_t c = blocked; c < channels; ++c) {
                float acc = 0.0f;
                for (int64_t t = t0; t < t1; ++t) acc += xb[t * channels + c];
                o[c] += acc * inv;
            }
        }
}

/* Whether this build uses OpenMP (several threads) or not. */
int tdanet_openmp(void) {
#ifdef _OPENMP
    return 1;
#else
    return 0;
#endif
}

/* A recorded program: a sequence of the kernels above, run in one call instead of one call
 * each from Python (a U-block makes about fifty of them, and each costs a few microseconds of
 * argument conversion there). Each step is TDANET_STEP_WORDS int64 words: the kind, then the
 * kernel's arguments in its own order but `threads`; a pointer is an index into `slots` (-1 for
 * NULL), a double (eps, slope) its bit pattern. */
#define TDANET_STEP_WORDS 20
enum { TDANET_STEP_DEPTHWISE = 1, TDANET_STEP_GLN = 2, TDANET_STEP_POOL_ADD = 3, TDANET_STEP_COPY = 4 };

static inline void *slot(void *const *slots, int64_t index) {
    return index < 0 ? NULL : slots[index];
}

static inline double as_double(int64_t bits) {
    double d;
    __builtin_memcpy(&d, &bits, sizeof d);
    return d;
}

/* Runs steps [0, count); returns how many completed. A step that fails (its kernel's status,
 * or -100 for an unknown kind) stops the program; its status is written to *status. */
int64_t tdanet_run(const int64_t *steps, int64_t count, void *const *slots, int threads,
                   int32_t *status) {
    *status = 0;
    for (int64_t i = 0; i < count; ++i) {
        const int64_t *a = steps + i * TDANET_STEP_WORDS;
        int s = 0;
        switch (a[0]) {
        case TDANET_STEP_DEPTHWISE:
            s = tdanet_depthwise(slot(slots, a[1]), a[2], a[3], a[4], slot(slots, a[5]),
                                 slot(slots, a[6]), a[7], a[8], a[9], a[10], slot(slots, a[11]),
                                 slot(slots, a[12]), threads);
            break;
        case TDANET_STEP_GLN:
            s = tdanet_gln(slot(slots, a[1]), a[2], a[3], a[4], slot(slots, a[5]),
                           slot(slots, a[6]), slot(slots, a[7]), slot(slots, a[8]),
                           as_double(a[9]), slot(slots, a[10]), slot(slots, a[11]), a[12],
                           slot(slots, a[13]), (int32_t)a[14], (float)as_double(a[15]),
                           slot(slots, a[16]), slot(slots, a[17]), slot(slots, a[18]), threads);
            break;
        case TDANET_STEP_POOL_ADD:
            tdanet_pool_add(slot(slots, a[1]), a[2], a[3], a[4], a[5], slot(slots, a[6]),
                            threads);
            break;
        case TDANET_STEP_COPY: /* bytes a[3] from slot a[1] to slot a[2] */
            __builtin_memcpy(slot(slots, a[2]), slot(slots, a[1]), (size_t)a[3]);
            break;
        default:
            s = -100;
        }
        if (s != 0) {
            *status = s;
            return i;
        }
    }
    return count;
}
