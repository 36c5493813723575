//! TODO (issue 13)
