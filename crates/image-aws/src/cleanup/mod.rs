//! Cleanup: deleting what a build created ([`unwind`](self) in order, each
//! resource through the step that creates its kind), and finding and
//! deleting what crashed builds left ([`find_leftovers`], [`delete_leftovers`]).
//!
//! Every resource a build creates is tagged at creation ([`TAG_BUILD_ID`],
//! and [`TAG_TEMPORARY`] on the key pair, security group and instance, and
//! a spot build's launch template, deleted with the key pair) and
//! pushed on the build's cleanup stack (`crate::resource`). On failure or cancellation the stack
//! unwinds: AMIs and copies deregistered with their snapshots first, then
//! the instance terminated (and waited for) while the key pair is deleted,
//! then the security group. On success only the key pair, security group
//! and instance go; the AMIs were never tagged temporary, so keeping them
//! costs no call. Every deletion retries throttling and 5xx answers until
//! [`WaitSettings::cleanup_timeout_secs`](crate::WaitSettings::cleanup_timeout_secs): a throttling burst never
//! abandons a running instance.
//!
//! [`find_leftovers`] lists, in any set of regions, what crashed or aborted
//! builds left: whatever carries the temporary tag, and the AMIs and
//! snapshots of a build whose temporary instance, security group or key
//! pair is still there (a build deletes the last of them only once its AMIs
//! are complete or deleted; the instance may go earlier, see
//! [`crate::step::terminate`]). [`delete_leftovers`] removes them.

mod leftovers;
mod unwind;

pub use crate::error::CleanupFailure;
pub use crate::resource::{
    Resource, TAG_BUILD_ID, TAG_BUILD_NAME, TAG_CREATED, TAG_IMAGES_KEPT, TAG_TEMPORARY,
};
pub use leftovers::{by_region, delete_leftovers, find_leftovers, Leftover};
pub use unwind::delete_one;
pub(crate) use unwind::unwind;
