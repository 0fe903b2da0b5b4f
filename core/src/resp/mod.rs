//! RESP2 and RESP3: the value model, an incremental decoder and an encoder.

mod frame;

pub use frame::{Frame, Protocol};
