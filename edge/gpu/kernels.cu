// GPU pre- and post-processing for edge's TensorRT backend, compiled at run time by pycuda (SourceModule,
// no_extern_c=True) and checked offline with nvcc by tests/test_gpu_kernels_compile.py.
//
// Each kernel reproduces the CPU reference exactly, not approximately:
// - letterbox_*: edge/preprocess.py, i.e. cv2.resize(INTER_LINEAR) on uint8, then colour order,
//   (pixel - mean) * inv_std and layout. OpenCV resizes uint8 images in fixed point: 11-bit weights
//   (edge/gpu/preprocess.py computes them per column and row, as OpenCV does) and a vertical pass that
//   shifts as its vectorised code does. The same integers give the same pixels.
// - argmax_classes, resize_nearest_u8: the softmax decoder's nearest path (edge/decoders/segmentation.py),
//   i.e. np.argmax over the class axis (first maximum wins), then the decoder's own nearest_tables.

// One resampled pixel value (0..255) of source channel `channel` at content position (cx, cy).
// taps_x / taps_y hold, per content column / row: first source index, second source index, first weight,
// second weight (weights sum to 2048).
__device__ __forceinline__ int resample_linear(const unsigned char* frame, int row_bytes, const int* taps_x,
                                               const int* taps_y, int cx, int cy, int channel)
{
    const int* tx = taps_x + 4 * cx;
    const int* ty = taps_y + 4 * cy;
    const unsigned char* row0 = frame + (size_t)ty[0] * row_bytes;
    const unsigned char* row1 = frame + (size_t)ty[1] * row_bytes;
    const int x0 = tx[0] * 3 + channel, x1 = tx[1] * 3 + channel;
    const int h0 = row0[x0] * tx[2] + row0[x1] * tx[3];
    const int h1 = row1[x0] * tx[2] + row1[x1] * tx[3];
    const int v = (((ty[2] * (h0 >> 4)) >> 16) + ((ty[3] * (h1 >> 4)) >> 16) + 2) >> 2;
    return min(max(v, 0), 255);
}

template <typename T>
__device__ __forceinline__ T to_model(float value);

template <>
__device__ __forceinline__ float to_model<float>(float value) { return value; }

template <>
__device__ __forceinline__ unsigned char to_model<unsigned char>(float value) { return (unsigned char)value; }

// One thread per model-input pixel: resampled frame inside the content box, pad value outside.
// norm: mean[3], inv_std[3], pad[3] per model channel; order: the BGR channel each model channel reads.
template <typename T>
__device__ void letterbox(const unsigned char* frame, int frame_width, const int* taps_x, const int* taps_y,
                          int content_x, int content_y, int content_w, int content_h, const float* norm,
                          int order0, int order1, int order2, T* out, int out_w, int out_h, int nchw)
{
    const int x = blockIdx.x * blockDim.x + threadIdx.x;
    const int y = blockIdx.y * blockDim.y + threadIdx.y;
    if (x >= out_w || y >= out_h) {
        return;
    }
    const int cx = x - content_x, cy = y - content_y;
    const bool inside = cx >= 0 && cx < content_w && cy >= 0 && cy < content_h;
    const int order[3] = {order0, order1, order2};
    const size_t plane = (size_t)out_w * out_h;
    const size_t pixel = (size_t)y * out_w + x;
    for (int c = 0; c < 3; ++c) {
        float value = norm[6 + c];
        if (inside) {
            const int p = resample_linear(frame, frame_width * 3, taps_x, taps_y, cx, cy, order[c]);
            value = ((float)p - norm[c]) * norm[3 + c];
        }
        out[nchw ? c * plane + pixel : pixel * 3 + c] = to_model<T>(value);
    }
}

extern "C" __global__ void letterbox_f32(const unsigned char* frame, int frame_width, const int* taps_x,
                                         const int* taps_y, int content_x, int content_y, int content_w,
                                         int content_h, const float* norm, int order0, int order1, int order2,
                                         float* out, int out_w, int out_h, int nchw)
{
    letterbox<float>(frame, frame_width, taps_x, taps_y, content_x, content_y, content_w, content_h, norm,
                     order0, order1, order2, out, out_w, out_h, nchw);
}

extern "C" __global__ void letterbox_u8(const unsigned char* frame, int frame_width, const int* taps_x,
                                        const int* taps_y, int content_x, int content_y, int content_w,
                                        int content_h, const float* norm, int order0, int order1, int order2,
                                        unsigned char* out, int out_w, int out_h, int nchw)
{
    letterbox<unsigned char>(frame, frame_width, taps_x, taps_y, content_x, content_y, content_w, content_h,
                             norm, order0, order1, order2, out, out_w, out_h, nchw);
}

// Per-pixel argmax over `classes` planes of `plane` logits each ([C, H, W]); ties keep the lowest class.
extern "C" __global__ void argmax_classes(const float* logits, int classes, int plane, unsigned char* class_map)
{
    const int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= plane) {
        return;
    }
    float best = logits[i];
    int best_class = 0;
    for (int c = 1; c < classes; ++c) {
        const float v = logits[(size_t)c * plane + i];
        if (v > best) {
            best = v;
            best_class = c;
        }
    }
    class_map[i] = (unsigned char)best_class;
}

// Nearest-neighbour resize by index tables (source column / row per destination column / row, content
// offset included).
extern "C" __global__ void resize_nearest_u8(const unsigned char* source, int source_width, const int* index_x,
                                             const int* index_y, unsigned char* out, int out_w, int out_h)
{
    const int x = blockIdx.x * blockDim.x + threadIdx.x;
    const int y = blockIdx.y * blockDim.y + threadIdx.y;
    if (x >= out_w || y >= out_h) {
        return;
    }
    out[(size_t)y * out_w + x] = source[(size_t)index_y[y] * source_width + index_x[x]];
}
