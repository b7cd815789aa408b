//! Status: the report schema, the daemon's Unix socket server, the client and the text
//! rendering used by `monitor status`.

pub mod client;
pub mod health;
pub mod model;
pub mod render;
pub mod server;
