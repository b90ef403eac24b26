//! The SNR and its scans: the laserQlora statistics of one matrix ([`snr`]), its singular values
//! by SVD or by the Gram route ([`gram`]), the order and threads of a scan ([`schedule`]), the
//! background scan itself ([`scan`]), the persistent cache of singular values ([`cache`]) and
//! scans split over machines ([`parts`]).

pub mod cache;
pub mod deflate;
mod error;
pub mod gram;
pub mod parts;
pub mod scan;
pub mod schedule;
pub mod snr;
pub mod tridiag;
