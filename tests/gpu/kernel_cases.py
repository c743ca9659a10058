"""Cases the fused CUDA kernels are checked on, shared by tests/gpu/test_kernels.py (on a GPU) and
tests/gpu/emulator/check.py (emulated on the CPU), so both check the same geometries."""

# max_pool2d options: tiled, overlapping (atomics), padded, dilated, ceil_mode, 1x1
POOLS = [{"kernel_size": 2}, {"kernel_size": 3, "stride": 1}, {"kernel_size": 3, "stride": 2, "padding": 1},
         {"kernel_size": 2, "dilation": 2}, {"kernel_size": 3, "stride": 2, "ceil_mode": True}, {"kernel_size": 1}]

# conv2d (options, kernel size): wide rows (stride 1), strided, dilated, grouped, asymmetric 'same'
# padding (even kernel), 1x1
CONVS = [({"padding": 1}, 3), ({"stride": 2, "padding": 1}, 3), ({"dilation": 2, "padding": 2}, 3),
         ({"groups": 2, "padding": 1}, 3), ({"padding": "same"}, 2), ({}, 1)]
