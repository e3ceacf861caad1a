//! Shared test harness: real servers on loopback (Airlock itself, Garage).
#![allow(dead_code)]

pub mod garage;
