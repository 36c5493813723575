//! The chain side of the node: contract bindings generated from the committed artifacts in `contracts/out`
//! ([`bindings`]) and a local anvil chain for tests and development testnets ([`anvil`]).
//!
//! Only this module touches alloy. The contracts themselves live in `contracts/` (see its README).

pub mod account;
pub mod actor;
pub mod anvil;
pub mod bindings;
pub mod deploy;
pub mod faults;
pub mod market;
pub mod tx;
