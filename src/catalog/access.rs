//! Who is reading, and which items they may see: exactly the rule each protocol applies
//! to its own reads, so the catalog never shows what a client could not pull.

use super::CatalogState;
use super::{CatalogError, ItemId};
use crate::auth::{Action, Auth, AuthError, Identity, Protocol};
use crate::hf::access::{repo_access, RepoAccess};
use crate::hf::model::RepoDoc;
use std::sync::Arc;

pub struct Reader {
    identity: Identity,
    auth: Arc<Auth>,
}

/// Whether a reader may see an item, and what the Hub knows of it if it is a repository.
pub enum Visibility {
    Visible(Option<RepoDoc>),
    /// Absent, or not readable with this token: the same answer for both.
    Hidden,
}

impl Reader {
    /// Identifies the caller; anonymous callers are refused when anonymous read is off,
    /// and a token that matches nothing is refused rather than treated as anonymous.
    pub fn new(state: &CatalogState, headers: &http::HeaderMap) -> Result<Reader, CatalogError> {
        let identity = state.auth.authenticate(headers)?;
        if matches!(identity, Identity::Anonymous) && !state.auth.anonymous_read() {
            return Err(AuthError::Unauthenticated.into());
        }
        Ok(Reader {
            identity,
            auth: state.auth.clone(),
        })
    }

    /// An admin of every protocol and name: sees the store's own totals.
    pub fn is_store_admin(&self) -> bool {
        self.auth.is_store_admin(&self.identity)
    }

    /// Name-based check for projects and images (their scopes name them; nothing in
    /// their documents changes who may read them).
    pub fn may_read_by_name(&self, item: &ItemId) -> bool {
        match item {
            ItemId::Project { index, name } => {
                self.may_read_named(Protocol::Pypi, &format!("{index}/{name}"))
            }
            ItemId::Image { name } => self.may_read_named(Protocol::Oci, name),
            ItemId::Hf { .. } => false,
        }
    }

    /// The same check on the name a scope names (`<index>/<project>`, an image's
    /// `<host>/<path>`), for callers that hold it as text already.
    pub fn may_read_named(&self, protocol: Protocol, name: &str) -> bool {
        self.auth
            .authorize(&self.identity, protocol, Action::Read, name)
            .is_ok()
    }

    /// The full check; for a Hub repository it reads its document (private flag) and
    /// applies the Hub API's own rule. An anonymous caller asking for a private
    /// repository is asked to authenticate, as the Hub API does.
    pub async fn visibility(
        &self,
        state: &CatalogState,
        item: &ItemId,
    ) -> Result<Visibility, CatalogError> {
        let Some(repo) = item.hf_repo() else {
            return Ok(if self.may_read_by_name(item) {
                Visibility::Visible(None)
            } else {
                Visibility::Hidden
            });
        };
        let Some(doc) =
            state.repos.repo(&repo).await.map_err(|e| {
                CatalogError::Store(crate::store::StoreError::Unavailable(e.message))
            })?
        else {
            return Ok(Visibility::Hidden);
        };
        match repo_access(&self.auth, &self.identity, &repo, &doc) {
            RepoAccess::Granted => Ok(Visibility::Visible(Some(doc))),
            RepoAccess::Unauthenticated => Err(AuthError::Unauthenticated.into()),
            RepoAccess::Hidden => Ok(Visibility::Hidden),
        }
    }
}
