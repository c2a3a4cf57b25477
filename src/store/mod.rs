//! What is kept on disk: the content-addressed cache, the verified stream
//! from a source into it (decode, unpack under the safety rules), the
//! lockfile, OCI image layouts, file helpers, and the session an operation
//! runs in.

pub(crate) mod cache;
pub(crate) mod decode;
pub(crate) mod fetch;
#[cfg(feature = "producer")]
pub(crate) mod layout;
pub(crate) mod lockfile;
pub(crate) mod session;
pub(crate) mod stream;
pub(crate) mod unpack;
