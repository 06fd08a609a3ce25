//! Procedural macros for Postage.
