//! portcullis-verify against a real Portcullis server on loopback.

mod attacks;
mod dpop;
mod example;
mod feed;
mod support;
