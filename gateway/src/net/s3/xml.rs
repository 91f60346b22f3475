//! The few XML documents S3 sends and takes: errors, InitiateMultipartUploadResult,
//! CompleteMultipartUpload (sent) and its result, ListMultipartUploadsResult.
//!
//! Elements are matched by local name (S3 puts them in its 2006-03-01 namespace; some servers
//! omit it).

use roxmltree::{Document, Node};

/// An S3 `<Error>` document.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub(crate) struct ErrorDoc {
    pub code: String,
    pub message: String,
    pub request_id: Option<String>,
}

/// One `<Upload>` of ListMultipartUploadsResult.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct UploadEntry {
    pub key: String,
    pub upload_id: String,
    pub initiated: Option<String>,
}

/// One page of ListMultipartUploadsResult.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub(crate) struct UploadsPage {
    pub uploads: Vec<UploadEntry>,
    pub is_truncated: bool,
    pub next_key_marker: Option<String>,
    pub next_upload_id_marker: Option<String>,
}

fn child_text<'a>(node: Node<'a, 'a>, name: &str) -> Option<&'a str> {
    node.children()
        .find(|c| c.is_element() && c.tag_name().name() == name)
        .map(|c| c.text().unwrap_or(""))
}

fn parse(body: &[u8]) -> Option<Document<'_>> {
    let text = std::str::from_utf8(body).ok()?;
    Document::parse(text).ok()
}

/// The `<Error>` in `body`, if it is one.
pub(crate) fn parse_error(body: &[u8]) -> Option<ErrorDoc> {
    let text = std::str::from_utf8(body).ok()?;
    let doc = Document::parse(text).ok()?;
    let root = doc.root_element();
    if root.tag_name().name() != "Error" {
        return None;
    }
    Some(ErrorDoc {
        code: child_text(root, "Code").unwrap_or("").to_owned(),
        message: child_text(root, "Message").unwrap_or("").to_owned(),
        request_id: child_text(root, "RequestId").map(str::to_owned),
    })
}

/// The `UploadId` of an InitiateMultipartUploadResult.
pub(crate) fn parse_upload_id(body: &[u8]) -> Option<String> {
    let doc = parse(body)?;
    let root = doc.root_element();
    if root.tag_name().name() != "InitiateMultipartUploadResult" {
        return None;
    }
    child_text(root, "UploadId")
        .filter(|id| !id.is_empty())
        .map(str::to_owned)
}

/// The `ETag` of a CompleteMultipartUploadResult.
pub(crate) fn parse_complete_etag(body: &[u8]) -> Option<String> {
    let doc = parse(body)?;
    let root = doc.root_element();
    if root.tag_name().name() != "CompleteMultipartUploadResult" {
        return None;
    }
    child_text(root, "ETag").map(str::to_owned)
}

/// One page of ListMultipartUploadsResult.
pub(crate) fn parse_uploads(body: &[u8]) -> Option<UploadsPage> {
    let doc = parse(body)?;
    let root = doc.root_element();
    if root.tag_name().name() != "ListMultipartUploadsResult" {
        return None;
    }
    let uploads = root
        .children()
        .filter(|c| c.is_element() && c.tag_name().name() == "Upload")
        .filter_map(|u| {
            Some(UploadEntry {
                key: child_text(u, "Key")?.to_owned(),
                upload_id: child_text(u, "UploadId")?.to_owned(),
                initiated: child_text(u, "Initiated").map(str::to_owned),
            })
        })
        .collect();
    let non_empty = |s: Option<&str>| s.filter(|s| !s.is_empty()).map(str::to_owned);
    Some(UploadsPage {
        uploads,
        is_truncated: child_text(root, "IsTruncated") == Some("true"),
        next_key_marker: non_empty(child_text(root, "NextKeyMarker")),
        next_upload_id_marker: non_empty(child_text(root, "NextUploadIdMarker")),
    })
}

/// Escapes text for an XML element.
fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            c => out.push(c),
        }
    }
    out
}

/// The CompleteMultipartUpload document for `(part number, etag)` pairs in order.
pub(crate) fn complete_body<'a>(parts: impl IntoIterator<Item = (u32, &'a str)>) -> String {
    let mut out =
        String::from("<CompleteMultipartUpload xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\">");
    for (number, etag) in parts {
        out.push_str("<Part><PartNumber>");
        out.push_str(&number.to_string());
        out.push_str("</PartNumber><ETag>");
        out.push_str(&escape(etag));
        out.push_str("</ETag></Part>");
    }
    out.push_str("</CompleteMultipartUpload>");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_with_and_without_namespace() {
        let body = br#"<?xml version="1.0" encoding="UTF-8"?><Error><Code>NoSuchKey</Code><Message>The specified key does not exist.</Message><Key>a/b</Key><RequestId>tx0001</RequestId></Error>"#;
        assert_eq!(
            parse_error(body),
            Some(ErrorDoc {
                code: "NoSuchKey".into(),
                message: "The specified key does not exist.".into(),
                request_id: Some("tx0001".into()),
            })
        );
        let rgw = br#"<?xml version="1.0" encoding="UTF-8"?><Error><Code>SignatureDoesNotMatch</Code><RequestId>tx2</RequestId><HostId>x</HostId></Error>"#;
        assert_eq!(parse_error(rgw).unwrap().code, "SignatureDoesNotMatch");
        assert_eq!(parse_error(b"<html>bad gateway</html>"), None);
        assert_eq!(parse_error(b"not xml"), None);
    }

    #[test]
    fn multipart_documents() {
        let init = br#"<InitiateMultipartUploadResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><Bucket>b</Bucket><Key>k</Key><UploadId>2~abc.DEF</UploadId></InitiateMultipartUploadResult>"#;
        assert_eq!(parse_upload_id(init).as_deref(), Some("2~abc.DEF"));
        let done = br#"<CompleteMultipartUploadResult><Location>x</Location><Bucket>b</Bucket><Key>k</Key><ETag>&quot;0123-3&quot;</ETag></CompleteMultipartUploadResult>"#;
        assert_eq!(parse_complete_etag(done).as_deref(), Some("\"0123-3\""));
        // A 200 carrying an error (S3 does this when completing fails late).
        let late = br#"<Error><Code>InternalError</Code><Message>x</Message></Error>"#;
        assert_eq!(parse_complete_etag(late), None);
        assert_eq!(parse_error(late).unwrap().code, "InternalError");
        assert_eq!(
            complete_body([(1, "\"a\""), (2, "\"b&c\"")]),
            "<CompleteMultipartUpload xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\">\
             <Part><PartNumber>1</PartNumber><ETag>&quot;a&quot;</ETag></Part>\
             <Part><PartNumber>2</PartNumber><ETag>&quot;b&amp;c&quot;</ETag></Part>\
             </CompleteMultipartUpload>"
        );
    }

    #[test]
    fn upload_listing_pages() {
        let body = br#"<ListMultipartUploadsResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><Bucket>b</Bucket><KeyMarker></KeyMarker><UploadIdMarker></UploadIdMarker><NextKeyMarker>k2</NextKeyMarker><NextUploadIdMarker>u2</NextUploadIdMarker><MaxUploads>2</MaxUploads><IsTruncated>true</IsTruncated><Upload><Key>k1</Key><UploadId>u1</UploadId><Initiated>2024-01-01T00:00:00.000Z</Initiated></Upload><Upload><Key>k2</Key><UploadId>u2</UploadId></Upload></ListMultipartUploadsResult>"#;
        let page = parse_uploads(body).unwrap();
        assert!(page.is_truncated);
        assert_eq!(page.next_key_marker.as_deref(), Some("k2"));
        assert_eq!(page.next_upload_id_marker.as_deref(), Some("u2"));
        assert_eq!(page.uploads.len(), 2);
        assert_eq!(page.uploads[0].upload_id, "u1");
        assert_eq!(
            page.uploads[0].initiated.as_deref(),
            Some("2024-01-01T00:00:00.000Z")
        );
        let empty = br#"<ListMultipartUploadsResult><IsTruncated>false</IsTruncated><NextKeyMarker></NextKeyMarker></ListMultipartUploadsResult>"#;
        let page = parse_uploads(empty).unwrap();
        assert!(!page.is_truncated && page.uploads.is_empty());
        assert_eq!(page.next_key_marker, None);
    }
}
