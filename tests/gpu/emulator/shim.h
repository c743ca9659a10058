// The CUDA execution model in plain C++20, for running tensor/kernels' row kernels on a CPU.
//
// Each launch runs its blocks one after another on a team of std::threads, one per CUDA thread of
// a block, so __syncthreads (a std::barrier over the block), warp shuffles (an exchange buffer and
// a barrier per warp) and __shared__ memory (a static local: one copy, reused block after block)
// behave as on the GPU, races and missing barriers included, only far slower. The second half is
// the C++ twin of _rows.py's DEVICE_PREAMBLE: float16 as raw bits converted through _Float16.
#include <algorithm>
#include <atomic>
#include <barrier>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <memory>
#include <thread>
#include <vector>

struct Dim3 { unsigned x = 1, y = 1, z = 1; };
static thread_local Dim3 threadIdx, blockIdx;
static Dim3 blockDim, gridDim;
static std::barrier<>* g_block_barrier;
static std::vector<std::unique_ptr<std::barrier<>>> g_warp_barriers;
static double g_exchange[1024];  // one slot per thread of a block: the values a shuffle trades

#define __global__
#define __device__
#define __forceinline__ inline
#define __restrict__
#define __shared__ static
#define __launch_bounds__(...)

inline void __syncthreads() { g_block_barrier->arrive_and_wait(); }
inline int emu_thread() { return threadIdx.x + threadIdx.y * blockDim.x; }
inline float __int_as_float(int bits) { float f; std::memcpy(&f, &bits, 4); return f; }

template <class V> V emu_exchange(V v, int source_lane) {
    const int t = emu_thread(), warp = t / 32;
    g_exchange[t] = (double)v;  // float and double survive the round trip exactly
    g_warp_barriers[warp]->arrive_and_wait();
    const V r = (V)g_exchange[warp * 32 + source_lane];
    g_warp_barriers[warp]->arrive_and_wait();
    return r;
}
template <class V> V __shfl_xor_sync(unsigned, V v, int offset) { return emu_exchange(v, (emu_thread() % 32) ^ offset); }
template <class V> V __shfl_sync(unsigned, V v, int source, int width) {
    return emu_exchange(v, (emu_thread() % 32) / width * width + source);
}

// Atomics through std::atomic_ref: the threads of a launch really do race.
inline float atomicAdd(float* p, float v) { return std::atomic_ref<float>(*p).fetch_add(v); }
inline double atomicAdd(double* p, double v) { return std::atomic_ref<double>(*p).fetch_add(v); }
inline unsigned atomicCAS(unsigned* p, unsigned expected, unsigned desired) {
    std::atomic_ref<unsigned>(*p).compare_exchange_strong(expected, desired);
    return expected;  // the old value, as CUDA's atomicCAS returns it
}

template <class F> void emu_launch(Dim3 grid, Dim3 block, F body) {
    const int n = block.x * block.y * block.z;
    blockDim = block;
    gridDim = grid;
    std::barrier<> block_barrier(n);
    g_block_barrier = &block_barrier;
    g_warp_barriers.clear();
    for (int w = 0; w * 32 < n; ++w) g_warp_barriers.emplace_back(new std::barrier<>(std::min(32, n - w * 32)));
    std::vector<std::thread> team;
    for (int t = 0; t < n; ++t) {
        team.emplace_back([&, t] {
            threadIdx.x = t % block.x;
            threadIdx.y = (t / block.x) % block.y;
            threadIdx.z = t / (block.x * block.y);
            for (unsigned bz = 0; bz < grid.z; ++bz)
                for (unsigned by = 0; by < grid.y; ++by)
                    for (unsigned bx = 0; bx < grid.x; ++bx) {
                        blockIdx.x = bx; blockIdx.y = by; blockIdx.z = bz;
                        body();
                        block_barrier.arrive_and_wait();  // the whole block is done before shared memory is reused
                    }
        });
    }
    for (auto& thread : team) thread.join();
}

// ----------------------------------------------------------------- twin of DEVICE_PREAMBLE
typedef EMU_STORAGE T;
typedef EMU_ACC A;
inline float to_acc(float v) { return v; }
inline double to_acc(double v) { return v; }
inline float to_acc(unsigned short bits) { _Float16 h; std::memcpy(&h, &bits, 2); return (float)h; }
inline void store(float* p, float v) { *p = v; }
inline void store(double* p, double v) { *p = v; }
inline void store(unsigned short* p, float v) { const _Float16 h = (_Float16)v; std::memcpy(p, &h, 2); }
inline float ex(float v) { return std::exp(v); }
inline double ex(double v) { return std::exp(v); }
inline float lg(float v) { return std::log(v); }
inline double lg(double v) { return std::log(v); }
inline float root(float v) { return std::sqrt(v); }
inline double root(double v) { return std::sqrt(v); }
#define POS_INF __int_as_float(0x7f800000)
#define NEG_INF (-POS_INF)
#define QNAN __int_as_float(0x7fffffff)
#define FULL_MASK 0xffffffffu
