//! The S3 error response: `<Error><Code/><Message/><Resource/><RequestId/></Error>` with
//! the HTTP status AWS gives each code, and `x-amz-request-id`.

use super::sigv4::SigError;
use super::xml::escape;
use crate::auth::AuthError;
use axum::response::{IntoResponse, Response};
use http::{header, HeaderValue, StatusCode};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Code {
    AccessDenied,
    AuthorizationHeaderMalformed,
    AuthorizationQueryParametersError,
    InternalError,
    InvalidAccessKeyId,
    InvalidArgument,
    InvalidBucketName,
    InvalidPartNumber,
    InvalidRange,
    InvalidRequest,
    KeyTooLongError,
    MethodNotAllowed,
    NoSuchBucket,
    NoSuchKey,
    NotImplemented,
    PreconditionFailed,
    RequestTimeTooSkewed,
    ServiceUnavailable,
    SignatureDoesNotMatch,
    SlowDown,
}

impl Code {
    pub fn as_str(self) -> &'static str {
        match self {
            Code::AccessDenied => "AccessDenied",
            Code::AuthorizationHeaderMalformed => "AuthorizationHeaderMalformed",
            Code::AuthorizationQueryParametersError => "AuthorizationQueryParametersError",
            Code::InternalError => "InternalError",
            Code::InvalidAccessKeyId => "InvalidAccessKeyId",
            Code::InvalidArgument => "InvalidArgument",
            Code::InvalidBucketName => "InvalidBucketName",
            Code::InvalidPartNumber => "InvalidPartNumber",
            Code::InvalidRange => "InvalidRange",
            Code::InvalidRequest => "InvalidRequest",
            Code::KeyTooLongError => "KeyTooLongError",
            Code::MethodNotAllowed => "MethodNotAllowed",
            Code::NoSuchBucket => "NoSuchBucket",
            Code::NoSuchKey => "NoSuchKey",
            Code::NotImplemented => "NotImplemented",
            Code::PreconditionFailed => "PreconditionFailed",
            Code::RequestTimeTooSkewed => "RequestTimeTooSkewed",
            Code::ServiceUnavailable => "ServiceUnavailable",
            Code::SignatureDoesNotMatch => "SignatureDoesNotMatch",
            Code::SlowDown => "SlowDown",
        }
    }

    pub fn status(self) -> StatusCode {
        match self {
            Code::AuthorizationHeaderMalformed
            | Code::AuthorizationQueryParametersError
            | Code::InvalidArgument
            | Code::InvalidBucketName
            | Code::InvalidRequest
            | Code::KeyTooLongError => StatusCode::BAD_REQUEST,
            Code::AccessDenied
            | Code::InvalidAccessKeyId
            | Code::RequestTimeTooSkewed
            | Code::SignatureDoesNotMatch => StatusCode::FORBIDDEN,
            Code::NoSuchBucket | Code::NoSuchKey => StatusCode::NOT_FOUND,
            Code::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            Code::PreconditionFailed => StatusCode::PRECONDITION_FAILED,
            Code::InvalidPartNumber | Code::InvalidRange => StatusCode::RANGE_NOT_SATISFIABLE,
            Code::InternalError => StatusCode::INTERNAL_SERVER_ERROR,
            Code::NotImplemented => StatusCode::NOT_IMPLEMENTED,
            Code::ServiceUnavailable | Code::SlowDown => StatusCode::SERVICE_UNAVAILABLE,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{}: {message}", code.as_str())]
pub struct S3Error {
    pub code: Code,
    pub message: String,
    /// The bucket or object the request named (`/models/org/m/config.json`).
    pub resource: Option<String>,
    /// The request's id (the `x-request-id` the observer assigned), echoed in the body
    /// and in `x-amz-request-id`.
    pub request_id: Option<String>,
}

pub type Result<T, E = S3Error> = std::result::Result<T, E>;

impl S3Error {
    pub fn new(code: Code, message: impl Into<String>) -> Self {
        S3Error {
            code,
            message: message.into(),
            resource: None,
            request_id: None,
        }
    }

    pub fn with_resource(mut self, resource: impl Into<String>) -> Self {
        self.resource = Some(resource.into());
        self
    }

    pub fn with_request_id(mut self, id: impl Into<String>) -> Self {
        self.request_id = Some(id.into());
        self
    }

    /// What a write or any other operation this read-only view does not serve answers.
    pub fn not_implemented(operation: &str) -> Self {
        S3Error::new(
            Code::NotImplemented,
            format!("{operation} is not implemented: this S3 API is a read-only view"),
        )
    }

    pub fn no_such_bucket(bucket: &str) -> Self {
        S3Error::new(Code::NoSuchBucket, "The specified bucket does not exist")
            .with_resource(format!("/{bucket}"))
    }

    pub fn no_such_key(bucket: &str, key: &str) -> Self {
        S3Error::new(Code::NoSuchKey, "The specified key does not exist.")
            .with_resource(format!("/{bucket}/{key}"))
    }

    /// The XML body.
    pub fn to_xml(&self) -> String {
        let mut out = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error>");
        out.push_str(&format!("<Code>{}</Code>", self.code.as_str()));
        out.push_str(&format!("<Message>{}</Message>", escape(&self.message)));
        if let Some(r) = &self.resource {
            out.push_str(&format!("<Resource>{}</Resource>", escape(r)));
        }
        if let Some(id) = &self.request_id {
            out.push_str(&format!("<RequestId>{}</RequestId>", escape(id)));
        }
        out.push_str("</Error>");
        out
    }
}

impl From<SigError> for S3Error {
    fn from(e: SigError) -> Self {
        S3Error::new(e.code(), e.to_string())
    }
}

/// Refusals of the token scopes: S3 answers every one `AccessDenied` (an anonymous
/// caller too, as AWS does for a private bucket).
impl From<AuthError> for S3Error {
    fn from(e: AuthError) -> Self {
        S3Error::new(Code::AccessDenied, format!("Access Denied: {e}"))
    }
}

impl IntoResponse for S3Error {
    fn into_response(self) -> Response {
        let mut response = (self.code.status(), self.to_xml()).into_response();
        let headers = response.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/xml"),
        );
        if let Some(id) = self
            .request_id
            .as_deref()
            .and_then(|id| HeaderValue::from_str(id).ok())
        {
            headers.insert("x-amz-request-id", id);
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_follow_aws() {
        let status = |c: Code| c.status().as_u16();
        assert_eq!(status(Code::NoSuchBucket), 404);
        assert_eq!(status(Code::NoSuchKey), 404);
        assert_eq!(status(Code::AccessDenied), 403);
        assert_eq!(status(Code::SignatureDoesNotMatch), 403);
        assert_eq!(status(Code::InvalidAccessKeyId), 403);
        assert_eq!(status(Code::RequestTimeTooSkewed), 403);
        assert_eq!(status(Code::InvalidArgument), 400);
        assert_eq!(status(Code::AuthorizationQueryParametersError), 400);
        assert_eq!(status(Code::InvalidRange), 416);
        assert_eq!(status(Code::PreconditionFailed), 412);
        assert_eq!(status(Code::NotImplemented), 501);
    }

    #[test]
    fn the_body_is_escaped_xml_with_the_request_id() {
        let e = S3Error::new(Code::NoSuchKey, "no <key> & \"that\"")
            .with_resource("/models/a&b")
            .with_request_id("req-1");
        assert_eq!(
            e.to_xml(),
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>NoSuchKey</Code>\
             <Message>no &lt;key&gt; &amp; &quot;that&quot;</Message>\
             <Resource>/models/a&amp;b</Resource><RequestId>req-1</RequestId></Error>"
        );
        let r = e.into_response();
        assert_eq!(r.status(), 404);
        assert_eq!(r.headers()["content-type"], "application/xml");
        assert_eq!(r.headers()["x-amz-request-id"], "req-1");
    }

    #[test]
    fn signature_refusals_keep_their_codes() {
        let e = S3Error::from(SigError::Expired);
        assert_eq!(
            (e.code, e.code.status().as_u16()),
            (Code::AccessDenied, 403)
        );
        let e = S3Error::from(SigError::SignatureDoesNotMatch);
        assert_eq!(e.code, Code::SignatureDoesNotMatch);
        let e = S3Error::from(SigError::BodyNotSupported);
        assert_eq!(e.code.status().as_u16(), 501);
        for refusal in [
            AuthError::Unauthenticated,
            AuthError::Forbidden("reader".into()),
        ] {
            assert_eq!(S3Error::from(refusal).code, Code::AccessDenied);
        }
        let e = S3Error::no_such_key("models", "org/m/x");
        assert_eq!(
            (e.code.status().as_u16(), e.resource.as_deref()),
            (404, Some("/models/org/m/x"))
        );
    }
}
