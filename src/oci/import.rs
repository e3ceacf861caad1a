//! Importing images without a network (filled in below).
