//! The registry's reads of the reserved name space, answered from the Hub's repositories.

use super::{hf_failure, names, ModelImages, Result};
use crate::auth::Identity;
use crate::digest::Digest;
use crate::oci::synthesized::{BoxFuture, SynthBlob, SynthManifest, Synthesizer};
use crate::oci::{Code, OciError, Reference};

impl Synthesizer for ModelImages {
    fn claims(&self, name: &str) -> bool {
        names::lowercase_id(name).is_some()
    }

    fn read_only_reason(&self) -> &'static str {
        "huggingface.co/... names are Airlock's model images, made from the Hub repositories: push the model through the Hugging Face API instead"
    }

    fn tags<'a>(
        &'a self,
        identity: &'a Identity,
        name: &'a str,
    ) -> BoxFuture<'a, Result<Vec<String>>> {
        Box::pin(async move {
            let repo = self.open(identity, name, None).await?;
            let refs = self.repos.refs(&repo).await.map_err(hf_failure)?;
            Ok(names::tags_of(refs.branches.keys().chain(refs.tags.keys())))
        })
    }

    fn manifest<'a>(
        &'a self,
        identity: &'a Identity,
        name: &'a str,
        reference: &'a Reference,
    ) -> BoxFuture<'a, Result<SynthManifest>> {
        Box::pin(async move {
            // A tag names a revision the upstream may have; a digest is searched for
            // among what is here.
            let rev = match reference {
                Reference::Tag(tag) => Some(names::parse_tag(tag).0),
                Reference::Digest(_) => None,
            };
            let repo = self.open(identity, name, rev).await?;
            match reference {
                Reference::Tag(tag) => self.manifest_by_tag(&repo, name, tag).await,
                Reference::Digest(d) => self
                    .search(&repo, |images| images.manifests.get(d).cloned())
                    .await?
                    .ok_or_else(|| {
                        OciError::new(
                            Code::ManifestUnknown,
                            format!("manifest {d} is not an image of `{name}`"),
                        )
                    }),
            }
        })
    }

    fn blob<'a>(
        &'a self,
        identity: &'a Identity,
        name: &'a str,
        digest: &'a Digest,
    ) -> BoxFuture<'a, Result<SynthBlob>> {
        Box::pin(async move {
            let repo = self.open(identity, name, None).await?;
            self.search(&repo, |images| images.blobs.get(digest).cloned())
                .await?
                .ok_or_else(|| {
                    OciError::new(
                        Code::BlobUnknown,
                        format!("blob {digest} is not in an image of `{name}`"),
                    )
                })
        })
    }
}
