//! Which device runs the model: WebGPU when the browser offers an adapter, the CPU otherwise.

use burn::backend::wgpu::{graphics::WebGpu, init_setup_async, RuntimeOptions, WgpuDevice};
use js_sys::{Function, Promise, Reflect};
use wasm_bindgen::{JsCast, JsValue};
use wasm_bindgen_futures::JsFuture;

use crate::recovery;

/// The GPU backend (burn-wgpu on the browser's WebGPU).
pub type Gpu = burn::backend::Wgpu<f32, i32>;
/// The fallback: burn's ndarray backend, single-threaded in the browser.
pub type Cpu = burn::backend::NdArray<f32>;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BackendKind {
    WebGpu,
    Cpu,
}

impl BackendKind {
    /// The name tests and the status line show.
    pub fn name(self) -> &'static str {
        match self {
            Self::WebGpu => "webgpu",
            Self::Cpu => "cpu",
        }
    }
}

/// Asks the browser for a WebGPU adapter. burn's own setup panics when there is none, so this
/// must succeed before [`init_webgpu`] runs. The error says why the CPU will be used instead.
pub async fn webgpu_adapter() -> Result<(), String> {
    if recovery::gpu_failed_before() {
        return Err("the GPU device was lost in this tab".into());
    }
    let navigator = web_sys::window().ok_or("no window")?.navigator();
    let gpu = Reflect::get(&navigator, &"gpu".into()).unwrap_or(JsValue::UNDEFINED);
    if gpu.is_undefined() || gpu.is_null() {
        return Err("this browser has no WebGPU".into());
    }
    let request = Reflect::get(&gpu, &"requestAdapter".into())
        .ok()
        .and_then(|f| f.dyn_into::<Function>().ok())
        .ok_or("this browser's WebGPU cannot request adapters")?;
    let promise = request
        .call0(&gpu)
        .ok()
        .and_then(|p| p.dyn_into::<Promise>().ok())
        .ok_or("requesting a WebGPU adapter failed")?;
    match JsFuture::from(promise).await {
        Ok(adapter) if !adapter.is_null() && !adapter.is_undefined() => Ok(()),
        Ok(_) => Err("WebGPU is present but offers no adapter".into()),
        Err(e) => Err(format!("requesting a WebGPU adapter failed: {e:?}")),
    }
}

/// Sets up burn's WebGPU runtime once per page; later calls reuse it.
pub async fn init_webgpu() -> WgpuDevice {
    thread_local! {
        static READY: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
    }
    let device = WgpuDevice::default();
    if !READY.get() {
        let setup = init_setup_async::<WebGpu>(&device, RuntimeOptions::default()).await;
        // The browser took the device away (driver reset, say): the page reloads on the CPU.
        setup
            .device
            .set_device_lost_callback(|_, _| recovery::gpu_failed());
        recovery::set_on_gpu();
        READY.set(true);
    }
    device
}
