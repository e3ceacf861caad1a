//! Shared test harness: real servers on loopback (Airlock itself, Garage) and
//! generated test content.
#![allow(dead_code)]

pub mod airlock;
pub mod backend;
pub mod garage;
pub mod wheels;
