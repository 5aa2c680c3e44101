//! Examples crate: programs live beside this file as `[[example]]` targets.
