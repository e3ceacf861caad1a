//! The query string as S3 reads it, shared by the signature check and the endpoint parser
//! so that what is signed and what is served are decoded the same way: `&`-separated
//! pairs, `+` a space, percent escapes decoded once, a name without `=` an empty value.

use percent_encoding::{percent_decode, percent_encode, AsciiSet, NON_ALPHANUMERIC};

/// A query longer than this is refused before it is split (continuation tokens and
/// presigned parameters fit many times over).
pub const MAX_QUERY_LEN: usize = 16 * 1024;
/// More pairs than this are refused: a ListObjectsV2 sends eight, a presigned URL seven
/// more, and the response-override parameters six.
pub const MAX_QUERY_PARAMS: usize = 64;

/// What SigV4 leaves unescaped: the RFC 3986 unreserved characters.
const AWS_UNRESERVED: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum QueryError {
    TooLong,
    TooManyParams,
}

/// One decoded pair, as bytes: a value need not be UTF-8 to be signed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Param {
    pub name: Vec<u8>,
    pub value: Vec<u8>,
}

impl Param {
    pub fn name_is(&self, name: &str) -> bool {
        self.name == name.as_bytes()
    }
}

/// The pairs of a raw query (without its `?`), in the order sent; empty pieces skipped.
pub fn parse(raw: &str) -> Result<Vec<Param>, QueryError> {
    if raw.len() > MAX_QUERY_LEN {
        return Err(QueryError::TooLong);
    }
    let mut out = Vec::new();
    for piece in raw.split('&').filter(|p| !p.is_empty()) {
        if out.len() == MAX_QUERY_PARAMS {
            return Err(QueryError::TooManyParams);
        }
        let (name, value) = piece.split_once('=').unwrap_or((piece, ""));
        out.push(Param {
            name: form_decode(name),
            value: form_decode(value),
        });
    }
    Ok(out)
}

fn form_decode(text: &str) -> Vec<u8> {
    let spaced: Vec<u8> = text
        .bytes()
        .map(|b| if b == b'+' { b' ' } else { b })
        .collect();
    percent_decode(&spaced).collect()
}

/// SigV4's URI encoding: every byte but the unreserved ones as `%XX`, upper-case hex.
pub fn aws_encode(bytes: &[u8]) -> String {
    percent_encode(bytes, AWS_UNRESERVED).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_once_with_plus_as_space() {
        let p = parse("prefix=a%2Fb+c%252F&list-type=2&&flag&x=%ZZ").unwrap();
        assert_eq!(p[0].value, b"a/b c%2F");
        assert!(p[1].name_is("list-type"));
        assert_eq!(
            p[2],
            Param {
                name: b"flag".to_vec(),
                value: vec![]
            }
        );
        assert_eq!(p[3].value, b"%ZZ");
        assert_eq!(aws_encode("a b/~é+".as_bytes()), "a%20b%2F~%C3%A9%2B");
    }

    #[test]
    fn bounded() {
        assert_eq!(
            parse(&"a".repeat(MAX_QUERY_LEN + 1)),
            Err(QueryError::TooLong)
        );
        let many = vec!["a=1"; MAX_QUERY_PARAMS + 1].join("&");
        assert_eq!(parse(&many), Err(QueryError::TooManyParams));
        let enough = vec!["a=1"; MAX_QUERY_PARAMS].join("&");
        assert_eq!(parse(&enough).unwrap().len(), MAX_QUERY_PARAMS);
    }
}
