//! Shared test harness: real servers on loopback (Airlock itself, Garage).
#![allow(dead_code)]

pub mod airlock;
pub mod garage;
