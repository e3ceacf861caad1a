//! Who may read a repository: the one rule the Hub API, the catalog and any other
//! reader of Hub content apply. Private repositories need a read scope for them, and
//! with anonymous reads off every repository does; public ones are open to anyone when
//! anonymous reads are on.

use super::model::{RepoDoc, RepoRef};
use crate::auth::{Action, Auth, AuthError, Identity, Protocol};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RepoAccess {
    Granted,
    /// The caller must authenticate first.
    Unauthenticated,
    /// Not for this caller: answered exactly as a repository that does not exist.
    Hidden,
}

pub fn repo_access(auth: &Auth, identity: &Identity, repo: &RepoRef, doc: &RepoDoc) -> RepoAccess {
    if !doc.private && auth.anonymous_read() {
        return RepoAccess::Granted;
    }
    if matches!(identity, Identity::Anonymous) {
        return RepoAccess::Unauthenticated;
    }
    match auth.authorize(identity, Protocol::Hf, Action::Read, &repo.scope_name()) {
        Ok(()) => RepoAccess::Granted,
        Err(AuthError::Unauthenticated) => RepoAccess::Unauthenticated,
        Err(_) => RepoAccess::Hidden,
    }
}

/// Files of a gated repository need a read scope for it even when the repository
/// itself is visible to everyone.
pub fn may_read_gated_files(auth: &Auth, identity: &Identity, repo: &RepoRef) -> bool {
    !matches!(identity, Identity::Anonymous)
        && auth
            .authorize(identity, Protocol::Hf, Action::Read, &repo.scope_name())
            .is_ok()
}
