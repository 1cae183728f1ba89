//! A workgroup's tree reduction, shared by the kernels that combine one value per thread.

use cubecl::prelude::*;

/// The sum (or with `largest`, the maximum) of every thread's `value`, returned to all
/// threads. `threads` is the workgroup's size, a power of two, and `red` holds that many
/// values; every thread must call it.
#[cube]
pub fn workgroup_reduce(
    value: f32,
    red: &mut SharedMemory<f32>,
    #[comptime] threads: u32,
    #[comptime] largest: bool,
) -> f32 {
    let t = UNIT_POS_X as usize;
    red[t] = value;
    sync_cube();
    let steps = comptime!(threads.trailing_zeros());
    #[unroll]
    for i in 0..steps {
        let s = ((threads / 2) >> i) as usize;
        if t < s {
            if largest {
                if red[t + s] > red[t] {
                    red[t] = red[t + s];
                }
            } else {
                red[t] = red[t] + red[t + s];
            }
        }
        sync_cube();
    }
    let total = red[0];
    // Later writes to `red` wait until every thread has read the result.
    sync_cube();
    total
}
