//! PLACEHOLDER: filled by its issue.
