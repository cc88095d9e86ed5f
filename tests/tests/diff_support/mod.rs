//! The differential harness of `provision_differential`: ansible-core 2.19 is
//! the oracle. The same playbooks run under ansible-core on one fresh test-bed
//! target and under image-cli on another; per task, the statuses and the
//! results must be the same, and so must the file trees the playbooks touch.
//!
//! * [`corpus`]: the playbooks (`tests/corpus/ansible/*.yml`) and their headers.
//! * [`ansible`]: ansible-playbook runs, several playbooks per invocation.
//! * [`cli`]: image-cli's library on the other target.
//! * [`observed`]: the shape both map to; [`compare`]: the task comparison.
//! * [`tree`]: file trees of a target; [`verdict`]: one playbook's differences.
//! * [`normal`]: the values that differ on two identical targets whatever
//!   the tool (backup names, download speeds), rewritten alike on both sides.

#![allow(dead_code)]

pub mod ansible;
pub mod cli;
pub mod compare;
pub mod corpus;
pub mod normal;
pub mod observed;
pub mod tree;
pub mod verdict;
