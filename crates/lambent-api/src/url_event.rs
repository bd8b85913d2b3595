//! Lambda function URL mapping, payload format 2.0: an HTTP request that arrives at a function URL
//! becomes the JSON event the function is invoked with, and what the function returns becomes the
//! HTTP response.
//!
//! The rules follow AWS's "Invoking Lambda function URLs" page (request and response payloads),
//! which defers to API Gateway's payload format 2.0. Where AWS documents nothing, this module
//! follows what real function URLs have been seen to do, and each such choice is written down
//! where it is made.
//!
//! This module does no I/O and knows nothing of routing, authorization or invocation: the caller
//! strips the URL prefix, supplies the facts that are not in the request ([`EventContext`]), invokes
//! the function, and answers 502 when [`response_from_payload`] returns an error or the function
//! itself failed.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use bytes::Bytes;
use http::header::{CONTENT_TYPE, COOKIE, SET_COOKIE, USER_AGENT};
use http::{HeaderMap, HeaderName, HeaderValue, Method, Response, StatusCode};
use serde_json::{Map, Value, json};

/// The payload format version of every function URL event.
pub const PAYLOAD_VERSION: &str = "2.0";

/// The placeholder AWS puts in `routeKey`, `requestContext.routeKey` and `requestContext.stage`:
/// function URLs have no routes or stages.
pub const DEFAULT_ROUTE_KEY: &str = "$default";

/// The protocol reported in `requestContext.http.protocol`, whatever the client spoke.
pub const EVENT_PROTOCOL: &str = "HTTP/1.1";

/// The response content type when the function does not set one.
pub const DEFAULT_CONTENT_TYPE: &str = "application/json";

/// Request media types whose body reaches the function as a plain string; every other type, and a
/// request without a content type, gets a base64 body with `isBase64Encoded: true`.
///
/// AWS's page only says "if the content type of the request is binary, the body is
/// base64-encoded" without a list. This is the list AWS documents for ALB Lambda targets and the
/// split observed on API Gateway HTTP APIs and function URLs: `text/*` plus these three. Notably
/// `application/x-www-form-urlencoded` is *not* text to AWS; `+json`/`+xml` types are treated as
/// binary too, since no AWS list has a suffix rule.
pub const TEXT_MEDIA_TYPES: [&str; 3] = [
    "application/json",
    "application/javascript",
    "application/xml",
];

/// The smallest and largest status a function may return in `statusCode`.
pub const STATUS_CODE_RANGE: std::ops::RangeInclusive<u16> = 100..=599;

/// Facts about the call that are not in the HTTP request.
#[derive(Debug, Clone, Copy)]
pub struct EventContext<'a> {
    /// The invocation's id, `requestContext.requestId`.
    pub request_id: &'a str,
    /// `requestContext.accountId`: the function owner's account; AWS sends `"anonymous"` for
    /// URLs with auth type `NONE`.
    pub account_id: &'a str,
    /// The URL's id: `requestContext.apiId` and `requestContext.domainPrefix`.
    pub url_id: &'a str,
    /// The host name the URL was called on (the `Host` header), `requestContext.domainName`.
    pub domain_name: &'a str,
    /// The address of the immediate TCP peer, `requestContext.http.sourceIp`.
    pub source_ip: &'a str,
    /// When the request arrived, in milliseconds since the Unix epoch.
    pub time_epoch_ms: i64,
}

/// Why a function's response cannot be turned into an HTTP response. The function URL should
/// answer 502 and log the message, which says what the function should return instead.
#[derive(Debug, thiserror::Error)]
pub enum UrlEventError {
    /// The payload is not JSON at all.
    #[error(
        "the function returned a response that is not JSON ({0}); return a JSON value, such as \
         {{\"statusCode\": 200, \"body\": \"...\"}} or any object, string or number"
    )]
    PayloadNotJson(serde_json::Error),
    /// `statusCode` is not a number or numeric string in [`STATUS_CODE_RANGE`].
    #[error(
        "statusCode {0} is not a valid HTTP status; return an integer from 100 to 599, such as 200"
    )]
    InvalidStatusCode(String),
    /// `headers` is not an object.
    #[error(
        "headers is a JSON {0}; return an object of header names to string values, such as \
         {{\"content-type\": \"text/html\"}}"
    )]
    HeadersNotObject(&'static str),
    /// A header's value is an object or an array.
    #[error(
        "header {name:?} has a JSON {kind} as its value; return a string (numbers and booleans \
         are also accepted), and put several cookies in the cookies array"
    )]
    HeaderValueNotScalar {
        /// The header's name as the function wrote it.
        name: String,
        /// The JSON type of the value.
        kind: &'static str,
    },
    /// A key of `headers` is not a valid HTTP header name.
    #[error("{0:?} in headers is not a valid HTTP header name; use letters, digits and '-'")]
    InvalidHeaderName(String),
    /// A header value has characters HTTP does not allow, such as a line break.
    #[error(
        "header {0:?} has a value HTTP cannot carry (control characters such as line breaks); \
         return visible ASCII text"
    )]
    InvalidHeaderValue(String),
    /// `cookies` is not an array of strings.
    #[error(
        "cookies must be an array of strings, such as [\"id=1; Path=/; HttpOnly\"], not a JSON {0}"
    )]
    CookiesNotStrings(&'static str),
    /// A cookie has characters a `set-cookie` header cannot carry.
    #[error(
        "cookie {0:?} cannot be sent as a set-cookie header (control characters such as line \
         breaks); return visible ASCII text"
    )]
    InvalidCookie(String),
    /// `isBase64Encoded` is not a boolean.
    #[error("isBase64Encoded is a JSON {0}; return true or false")]
    Base64FlagNotBool(&'static str),
    /// `isBase64Encoded` is true but `body` is not a string.
    #[error("isBase64Encoded is true but body is a JSON {0}; return the body as a base64 string")]
    Base64BodyNotString(&'static str),
    /// `isBase64Encoded` is true but `body` does not decode.
    #[error(
        "isBase64Encoded is true but body is not valid base64 ({0}); encode the body with \
         standard base64 (RFC 4648, with padding) or set isBase64Encoded to false"
    )]
    BodyNotBase64(base64::DecodeError),
}

/// The function URL event (payload format 2.0) for a request.
///
/// `path` is the path the function sees (starts with '/', already relative to the function's URL
/// prefix) and becomes `rawPath` and `requestContext.http.path`; `query` is the raw query string
/// without '?', passed through as `rawQueryString` (`""` when there is none).
///
/// - `headers`: every header with its lowercase name; a header sent several times has its values
///   joined with ',' (Cookie headers with "; ", as HTTP/2 prescribes). The cookie header stays in
///   `headers` even though its cookies are also in `cookies`: real function URLs send both.
/// - `cookies`: each `name=value` pair of the Cookie header(s); omitted when there are none.
/// - `queryStringParameters`: names and values percent-decoded ('+' is a space), a name given
///   several times has its values joined with ','; omitted when the query has no parameters.
/// - `body`: omitted when the request has none. It is a string with `isBase64Encoded: false` when
///   the content type is text (`text/*` or one of [`TEXT_MEDIA_TYPES`]) and the bytes are UTF-8;
///   otherwise it is base64 with `isBase64Encoded: true`.
/// - `requestContext.time` is the arrival time as `28/Nov/2026:17:05:59 +0000`.
///
/// Fields AWS fills only for IAM-authorized URLs (`authorizer`) or sets to null
/// (`authentication`, `pathParameters`, `stageVariables`) are left out.
pub fn request_event(
    method: &Method,
    path: &str,
    query: Option<&str>,
    headers: &HeaderMap,
    body: &[u8],
    ctx: &EventContext<'_>,
) -> Value {
    let raw_query = query.unwrap_or("");
    let user_agent = headers
        .get(USER_AGENT)
        .map(|value| lossy(value.as_bytes()))
        .unwrap_or_default();

    let mut event = Map::new();
    event.insert("version".into(), PAYLOAD_VERSION.into());
    event.insert("routeKey".into(), DEFAULT_ROUTE_KEY.into());
    event.insert("rawPath".into(), path.into());
    event.insert("rawQueryString".into(), raw_query.into());

    let cookies = request_cookies(headers);
    if !cookies.is_empty() {
        event.insert("cookies".into(), cookies.into());
    }
    event.insert("headers".into(), Value::Object(event_headers(headers)));

    let parameters = query_parameters(raw_query);
    if !parameters.is_empty() {
        event.insert("queryStringParameters".into(), Value::Object(parameters));
    }

    event.insert(
        "requestContext".into(),
        json!({
            "accountId": ctx.account_id,
            "apiId": ctx.url_id,
            "domainName": ctx.domain_name,
            "domainPrefix": ctx.url_id,
            "http": {
                "method": method.as_str(),
                "path": path,
                "protocol": EVENT_PROTOCOL,
                "sourceIp": ctx.source_ip,
                "userAgent": user_agent,
            },
            "requestId": ctx.request_id,
            "routeKey": DEFAULT_ROUTE_KEY,
            "stage": DEFAULT_ROUTE_KEY,
            "time": request_time(ctx.time_epoch_ms),
            "timeEpoch": ctx.time_epoch_ms,
        }),
    );

    let is_base64 = if body.is_empty() {
        false
    } else {
        let text = is_text_content_type(headers)
            .then(|| std::str::from_utf8(body).ok())
            .flatten();
        match text {
            Some(text) => {
                event.insert("body".into(), text.into());
                false
            }
            None => {
                event.insert("body".into(), BASE64.encode(body).into());
                true
            }
        }
    };
    event.insert("isBase64Encoded".into(), is_base64.into());

    Value::Object(event)
}

/// The HTTP response for what the function returned.
///
/// - A JSON object with a `statusCode` is a response description. `statusCode` is an integer or a
///   numeric string (AWS accepts `"418"`) from 100 to 599. `headers` is an object whose values are
///   strings (numbers and booleans are written out, null skips the header; the headers
///   the server owns, [`lambent_core::framing::is_server_owned`], are dropped). Each string in
///   `cookies` becomes its own `set-cookie` header. `body` is a string, base64-decoded when
///   `isBase64Encoded` is true; a missing or null body is empty, and any other JSON body is sent
///   as its JSON text. `multiValueHeaders` is ignored: it belongs to format 1.0, and format 2.0
///   (which function URLs use) does not have it.
/// - Any other JSON (an object without `statusCode`, an array, a number, a boolean, null) is the
///   body as the function returned it, with status 200, as AWS documents ("Lambda infers the
///   response format").
/// - A JSON string is the exception: the body is the string's text without the JSON quotes.
///   AWS's page shows the quotes, but real function URLs answer `"hello"` with the 5 bytes
///   `hello`, and this follows them.
/// - The content type is `application/json` unless the response description sets one.
/// - A payload that is not JSON is an error ([`UrlEventError::PayloadNotJson`]): AWS documents
///   only JSON responses, and a malformed response from a function URL is a 502.
pub fn response_from_payload(payload: &[u8]) -> Result<Response<Bytes>, UrlEventError> {
    let value: Value = serde_json::from_slice(payload).map_err(UrlEventError::PayloadNotJson)?;
    match value {
        Value::Object(object) if object.contains_key("statusCode") => described_response(&object),
        Value::String(text) => Ok(inferred_response(Bytes::from(text))),
        _ => Ok(inferred_response(Bytes::copy_from_slice(payload))),
    }
}

/// 200 with `application/json` and this body.
fn inferred_response(body: Bytes) -> Response<Bytes> {
    let mut response = Response::new(body);
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(DEFAULT_CONTENT_TYPE));
    response
}

/// The response a `{"statusCode": ...}` object describes.
fn described_response(object: &Map<String, Value>) -> Result<Response<Bytes>, UrlEventError> {
    let status = status_code(object.get("statusCode").unwrap_or(&Value::Null))?;

    let mut headers = HeaderMap::new();
    match object.get("headers") {
        None | Some(Value::Null) => {}
        Some(Value::Object(map)) => {
            for (name, value) in map {
                let text = match value {
                    Value::Null => continue,
                    Value::String(text) => text.clone(),
                    Value::Number(number) => number.to_string(),
                    Value::Bool(flag) => flag.to_string(),
                    other => {
                        return Err(UrlEventError::HeaderValueNotScalar {
                            name: name.clone(),
                            kind: json_kind(other),
                        });
                    }
                };
                let header_name = HeaderName::from_bytes(name.as_bytes())
                    .map_err(|_| UrlEventError::InvalidHeaderName(name.clone()))?;
                if lambent_core::framing::is_server_owned(header_name.as_str()) {
                    continue;
                }
                let header_value = HeaderValue::from_str(&text)
                    .map_err(|_| UrlEventError::InvalidHeaderValue(name.clone()))?;
                headers.insert(header_name, header_value);
            }
        }
        Some(other) => return Err(UrlEventError::HeadersNotObject(json_kind(other))),
    }

    match object.get("cookies") {
        None | Some(Value::Null) => {}
        Some(Value::Array(cookies)) => {
            for cookie in cookies {
                let Value::String(cookie) = cookie else {
                    return Err(UrlEventError::CookiesNotStrings(json_kind(cookie)));
                };
                let value = HeaderValue::from_str(cookie)
                    .map_err(|_| UrlEventError::InvalidCookie(cookie.clone()))?;
                headers.append(SET_COOKIE, value);
            }
        }
        Some(other) => return Err(UrlEventError::CookiesNotStrings(json_kind(other))),
    }

    let is_base64 = match object.get("isBase64Encoded") {
        None | Some(Value::Null) => false,
        Some(Value::Bool(flag)) => *flag,
        Some(other) => return Err(UrlEventError::Base64FlagNotBool(json_kind(other))),
    };
    let body = match object.get("body") {
        None | Some(Value::Null) => Bytes::new(),
        Some(Value::String(text)) if is_base64 => BASE64
            .decode(text)
            .map(Bytes::from)
            .map_err(UrlEventError::BodyNotBase64)?,
        Some(Value::String(text)) => Bytes::from(text.clone()),
        Some(other) if is_base64 => {
            return Err(UrlEventError::Base64BodyNotString(json_kind(other)));
        }
        Some(other) => Bytes::from(other.to_string()),
    };

    if !headers.contains_key(CONTENT_TYPE) {
        headers.insert(CONTENT_TYPE, HeaderValue::from_static(DEFAULT_CONTENT_TYPE));
    }

    let mut response = Response::new(body);
    *response.status_mut() = status;
    *response.headers_mut() = headers;
    Ok(response)
}

/// Drops the headers a function may not set ([`lambent_core::framing::is_server_owned`]).
pub fn drop_server_owned_headers(headers: &mut HeaderMap) {
    let owned: Vec<HeaderName> = headers
        .keys()
        .filter(|k| lambent_core::framing::is_server_owned(k.as_str()))
        .cloned()
        .collect();
    for name in owned {
        headers.remove(name);
    }
}

/// The status `statusCode` names: an integer, or a string of digits, in [`STATUS_CODE_RANGE`].
fn status_code(value: &Value) -> Result<StatusCode, UrlEventError> {
    let number = match value {
        Value::Number(number) => number.as_u64(),
        Value::String(text) => text.trim().parse::<u64>().ok(),
        _ => None,
    };
    number
        .and_then(|number| u16::try_from(number).ok())
        .filter(|number| STATUS_CODE_RANGE.contains(number))
        .and_then(|number| StatusCode::from_u16(number).ok())
        .ok_or_else(|| UrlEventError::InvalidStatusCode(value.to_string()))
}

/// The name of a JSON value's type, for error messages.
fn json_kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// Bytes as text, with U+FFFD for what is not UTF-8.
fn lossy(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// The `headers` object: lowercase names, repeated values joined with ',' (cookies with "; ").
fn event_headers(headers: &HeaderMap) -> Map<String, Value> {
    let mut object = Map::new();
    for name in headers.keys() {
        let separator = if name == COOKIE { "; " } else { "," };
        let joined = headers
            .get_all(name)
            .iter()
            .map(|value| lossy(value.as_bytes()))
            .collect::<Vec<_>>()
            .join(separator);
        object.insert(name.as_str().to_owned(), joined.into());
    }
    object
}

/// The `name=value` pairs of every Cookie header, in order.
fn request_cookies(headers: &HeaderMap) -> Vec<Value> {
    headers
        .get_all(COOKIE)
        .iter()
        .flat_map(|value| {
            lossy(value.as_bytes())
                .split(';')
                .map(str::trim)
                .filter(|pair| !pair.is_empty())
                .map(|pair| Value::String(pair.to_owned()))
                .collect::<Vec<_>>()
        })
        .collect()
}

/// `queryStringParameters`: decoded names to their values, repeated names joined with ','.
fn query_parameters(query: &str) -> Map<String, Value> {
    let mut parameters: Map<String, Value> = Map::new();
    for pair in query.split('&').filter(|pair| !pair.is_empty()) {
        let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
        let name = form_decode(name);
        let value = form_decode(value);
        match parameters.get_mut(&name) {
            Some(Value::String(existing)) => {
                existing.push(',');
                existing.push_str(&value);
            }
            _ => {
                parameters.insert(name, value.into());
            }
        }
    }
    parameters
}

/// Decodes one `application/x-www-form-urlencoded` component: '+' is a space, `%XX` a byte, a '%'
/// not followed by two hex digits stays as it is.
fn form_decode(component: &str) -> String {
    let bytes = component.as_bytes();
    let mut decoded = Vec::with_capacity(bytes.len());
    let mut index = 0;
    while let Some(&byte) = bytes.get(index) {
        match byte {
            b'+' => decoded.push(b' '),
            b'%' => {
                let high = bytes.get(index + 1).and_then(|digit| hex_value(*digit));
                let low = bytes.get(index + 2).and_then(|digit| hex_value(*digit));
                if let (Some(high), Some(low)) = (high, low) {
                    decoded.push(high << 4 | low);
                    index += 2;
                } else {
                    decoded.push(b'%');
                }
            }
            other => decoded.push(other),
        }
        index += 1;
    }
    lossy(&decoded)
}

/// The value of one hex digit.
fn hex_value(digit: u8) -> Option<u8> {
    char::from(digit)
        .to_digit(16)
        .and_then(|value| u8::try_from(value).ok())
}

/// Whether the request's content type makes its body text: `text/*` or one of
/// [`TEXT_MEDIA_TYPES`], parameters such as `charset` ignored.
fn is_text_content_type(headers: &HeaderMap) -> bool {
    let Some(value) = headers.get(CONTENT_TYPE) else {
        return false;
    };
    let value = lossy(value.as_bytes());
    let media_type = value
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    media_type.starts_with("text/") || TEXT_MEDIA_TYPES.contains(&media_type.as_str())
}

/// `requestContext.time`: the UTC time as `28/Nov/2026:17:05:59 +0000`.
fn request_time(epoch_ms: i64) -> String {
    lambent_core::clock::clf_time(epoch_ms)
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(super) const CTX: EventContext<'static> = EventContext {
        request_id: "req-1",
        account_id: "123456789012",
        url_id: "abcdefg",
        domain_name: "abcdefg.lambda-url.local",
        source_ip: "203.0.113.7",
        time_epoch_ms: 1_795_885_559_123,
    };

    fn header_map(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for (name, value) in pairs {
            headers.append(
                HeaderName::from_bytes(name.as_bytes()).expect("header name"),
                HeaderValue::from_str(value).expect("header value"),
            );
        }
        headers
    }

    fn header_values(response: &Response<Bytes>, name: &str) -> Vec<String> {
        response
            .headers()
            .get_all(name)
            .iter()
            .map(|value| value.to_str().expect("ascii header").to_owned())
            .collect()
    }

    #[test]
    fn get_with_query_cookies_and_user_agent() {
        let headers = header_map(&[
            ("Host", "abcdefg.lambda-url.local"),
            ("User-Agent", "curl/8.5.0"),
            ("Cookie", "session=abc; theme=dark"),
            ("Cookie", "lang=en"),
            ("X-Multi", "one"),
            ("X-Multi", "two"),
        ]);
        let query = "a=1&a=2&name=Jane%20Doe&q=x+y&flag&&b=";
        let event = request_event(&Method::GET, "/items/42", Some(query), &headers, b"", &CTX);

        let expected = json!({
            "version": "2.0",
            "routeKey": "$default",
            "rawPath": "/items/42",
            "rawQueryString": query,
            "cookies": ["session=abc", "theme=dark", "lang=en"],
            "headers": {
                "host": "abcdefg.lambda-url.local",
                "user-agent": "curl/8.5.0",
                "cookie": "session=abc; theme=dark; lang=en",
                "x-multi": "one,two",
            },
            "queryStringParameters": {
                "a": "1,2",
                "name": "Jane Doe",
                "q": "x y",
                "flag": "",
                "b": "",
            },
            "requestContext": {
                "accountId": "123456789012",
                "apiId": "abcdefg",
                "domainName": "abcdefg.lambda-url.local",
                "domainPrefix": "abcdefg",
                "http": {
                    "method": "GET",
                    "path": "/items/42",
                    "protocol": "HTTP/1.1",
                    "sourceIp": "203.0.113.7",
                    "userAgent": "curl/8.5.0",
                },
                "requestId": "req-1",
                "routeKey": "$default",
                "stage": "$default",
                "time": "28/Nov/2026:17:05:59 +0000",
                "timeEpoch": 1_795_885_559_123_i64,
            },
            "isBase64Encoded": false,
        });
        assert_eq!(event, expected);
    }

    #[test]
    fn no_query_no_cookies_no_body_omits_those_fields() {
        let event = request_event(&Method::GET, "/", None, &HeaderMap::new(), b"", &CTX);
        let object = event.as_object().expect("event is an object");
        assert_eq!(event["rawQueryString"], "");
        assert!(!object.contains_key("queryStringParameters"));
        assert!(!object.contains_key("cookies"));
        assert!(!object.contains_key("body"));
        assert_eq!(event["isBase64Encoded"], false);
        assert_eq!(event["headers"], json!({}));
        assert_eq!(event["requestContext"]["http"]["userAgent"], "");

        let event = request_event(&Method::GET, "/", Some(""), &HeaderMap::new(), b"", &CTX);
        let object = event.as_object().expect("event is an object");
        assert!(!object.contains_key("queryStringParameters"));
    }

    #[test]
    fn post_json_body_is_plain_text() {
        let headers = header_map(&[("Content-Type", "application/json; charset=utf-8")]);
        let body = br#"{"key":"value","n":1}"#;
        let event = request_event(&Method::POST, "/orders", None, &headers, body, &CTX);
        assert_eq!(event["body"], r#"{"key":"value","n":1}"#);
        assert_eq!(event["isBase64Encoded"], false);
        assert_eq!(event["requestContext"]["http"]["method"], "POST");
    }

    #[test]
    fn text_types_are_plain_and_others_base64() {
        let cases = [
            ("text/plain", false),
            ("TEXT/HTML; charset=utf-8", false),
            ("application/javascript", false),
            ("application/xml", false),
            ("application/octet-stream", true),
            ("application/x-www-form-urlencoded", true),
            ("application/vnd.api+json", true),
            ("image/png", true),
        ];
        for (content_type, base64) in cases {
            let headers = header_map(&[("content-type", content_type)]);
            let event = request_event(&Method::POST, "/", None, &headers, b"a=1", &CTX);
            assert_eq!(event["isBase64Encoded"], base64, "{content_type}");
            let expected = if base64 { "YT0x" } else { "a=1" };
            assert_eq!(event["body"], expected, "{content_type}");
        }
        // No content type at all is binary too.
        let event = request_event(&Method::POST, "/", None, &HeaderMap::new(), b"a=1", &CTX);
        assert_eq!(event["isBase64Encoded"], true);
    }

    #[test]
    fn post_binary_body_is_base64() {
        let headers = header_map(&[("content-type", "application/octet-stream")]);
        let body = [0x00, 0xff, 0x80, 0x0a];
        let event = request_event(&Method::POST, "/upload", None, &headers, &body, &CTX);
        assert_eq!(event["isBase64Encoded"], true);
        assert_eq!(event["body"], "AP+ACg==");
        let decoded = BASE64
            .decode(event["body"].as_str().expect("body is a string"))
            .expect("body is base64");
        assert_eq!(decoded, body);
    }

    #[test]
    fn non_utf8_text_body_is_base64() {
        let headers = header_map(&[("content-type", "text/plain")]);
        let event = request_event(&Method::PUT, "/", None, &headers, &[0xc3, 0x28], &CTX);
        assert_eq!(event["isBase64Encoded"], true);
        assert_eq!(event["body"], "wyg=");
    }

    #[test]
    fn malformed_percent_escapes_stay_literal() {
        let event = request_event(
            &Method::GET,
            "/",
            Some("p=100%&q=%zz&r=%e2%82%ac"),
            &HeaderMap::new(),
            b"",
            &CTX,
        );
        assert_eq!(
            event["queryStringParameters"],
            json!({"p": "100%", "q": "%zz", "r": "€"})
        );
    }

    #[test]
    fn request_time_formats() {
        assert_eq!(
            request_time(1_795_885_559_000),
            "28/Nov/2026:17:05:59 +0000"
        );
        assert_eq!(request_time(0), "01/Jan/1970:00:00:00 +0000");
        assert_eq!(
            request_time(1_709_164_800_000),
            "29/Feb/2024:00:00:00 +0000"
        );
        assert_eq!(request_time(-1), "31/Dec/1969:23:59:59 +0000");
        assert_eq!(request_time(951_782_400_000), "29/Feb/2000:00:00:00 +0000");
        assert_eq!(
            request_time(4_102_444_799_999),
            "31/Dec/2099:23:59:59 +0000"
        );
        // 2100 is not a leap year.
        assert_eq!(
            request_time(4_107_542_399_000),
            "28/Feb/2100:23:59:59 +0000"
        );
        assert_eq!(
            request_time(4_107_542_400_000),
            "01/Mar/2100:00:00:00 +0000"
        );
    }

    #[test]
    fn described_response_with_headers_cookies_and_body() {
        let payload = json!({
            "statusCode": 201,
            "headers": {
                "Content-Type": "text/html",
                "My-Custom-Header": "Custom Value",
                "X-Count": 3,
                "X-Cached": false,
                "X-Skipped": null,
            },
            "cookies": [
                "Cookie_1=Value1; Expires=21 Oct 2021 07:48 GMT",
                "Cookie_2=Value2; Max-Age=78000",
            ],
            "body": "<p>hi</p>",
            "isBase64Encoded": false,
        });
        let response = response_from_payload(payload.to_string().as_bytes()).expect("a response");
        assert_eq!(response.status(), StatusCode::CREATED);
        assert_eq!(header_values(&response, "content-type"), ["text/html"]);
        assert_eq!(
            header_values(&response, "my-custom-header"),
            ["Custom Value"]
        );
        assert_eq!(header_values(&response, "x-count"), ["3"]);
        assert_eq!(header_values(&response, "x-cached"), ["false"]);
        assert!(response.headers().get("x-skipped").is_none());
        assert_eq!(
            header_values(&response, "set-cookie"),
            [
                "Cookie_1=Value1; Expires=21 Oct 2021 07:48 GMT",
                "Cookie_2=Value2; Max-Age=78000",
            ]
        );
        assert_eq!(response.body(), "<p>hi</p>");
    }

    #[test]
    fn described_response_defaults() {
        let response = response_from_payload(br#"{"statusCode": "418"}"#).expect("a response");
        assert_eq!(response.status(), StatusCode::IM_A_TEAPOT);
        assert_eq!(
            header_values(&response, "content-type"),
            ["application/json"]
        );
        assert!(response.body().is_empty());

        // multiValueHeaders is a format 1.0 field and is ignored.
        let response = response_from_payload(
            br#"{"statusCode": 200, "body": "x", "multiValueHeaders": {"x-a": ["1", "2"]}}"#,
        )
        .expect("a response");
        assert!(response.headers().get("x-a").is_none());
        assert_eq!(response.body(), "x");

        // Framing headers are the server's business.
        let response = response_from_payload(
            br#"{"statusCode": 200, "body": "x", "headers": {"Content-Length": "99", "Connection": "close"}}"#,
        )
        .expect("a response");
        assert!(response.headers().get("content-length").is_none());
        assert!(response.headers().get("connection").is_none());

        // A body that is not a string is sent as its JSON text.
        let response =
            response_from_payload(br#"{"statusCode": 200, "body": {"a": 1}}"#).expect("a response");
        assert_eq!(response.body(), r#"{"a":1}"#);
    }

    #[test]
    fn base64_body_is_decoded() {
        let payload = json!({
            "statusCode": 200,
            "headers": {"content-type": "image/png"},
            "body": "AP+ACg==",
            "isBase64Encoded": true,
        });
        let response = response_from_payload(payload.to_string().as_bytes()).expect("a response");
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(header_values(&response, "content-type"), ["image/png"]);
        assert_eq!(response.body().as_ref(), [0x00, 0xff, 0x80, 0x0a]);
    }

    #[test]
    fn object_without_status_code_is_the_body_verbatim() {
        let payload = br#"{ "message": "Hello, world!", "body": "not used" }"#;
        let response = response_from_payload(payload).expect("a response");
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(
            header_values(&response, "content-type"),
            ["application/json"]
        );
        assert_eq!(response.body().as_ref(), payload);
    }

    #[test]
    fn json_string_is_the_body_without_quotes() {
        let response = response_from_payload(br#""Hello, world!""#).expect("a response");
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(
            header_values(&response, "content-type"),
            ["application/json"]
        );
        assert_eq!(response.body(), "Hello, world!");
    }

    #[test]
    fn other_json_values_are_the_body_verbatim() {
        for payload in ["3", "3.1", "true", "null", r#"["hello", 3, true]"#] {
            let response = response_from_payload(payload.as_bytes()).expect("a response");
            assert_eq!(response.status(), StatusCode::OK, "{payload}");
            assert_eq!(response.body(), payload);
            assert_eq!(
                header_values(&response, "content-type"),
                ["application/json"]
            );
        }
    }

    #[test]
    fn invalid_status_codes_are_errors() {
        for status in [
            "99", "600", "70000", "-1", "200.5", "\"abc\"", "true", "null",
        ] {
            let payload = format!(r#"{{"statusCode": {status}, "body": "x"}}"#);
            let error = response_from_payload(payload.as_bytes()).expect_err("an error");
            assert!(
                matches!(error, UrlEventError::InvalidStatusCode(_)),
                "{status}: {error}"
            );
        }
        let error = response_from_payload(br#"{"statusCode": 99}"#).expect_err("an error");
        assert_eq!(
            error.to_string(),
            "statusCode 99 is not a valid HTTP status; return an integer from 100 to 599, such \
             as 200"
        );
    }

    #[test]
    fn bad_base64_is_an_error() {
        let error = response_from_payload(
            br#"{"statusCode": 200, "body": "not base64!", "isBase64Encoded": true}"#,
        )
        .expect_err("an error");
        assert!(matches!(error, UrlEventError::BodyNotBase64(_)), "{error}");
        assert!(error.to_string().contains("set isBase64Encoded to false"));

        let error =
            response_from_payload(br#"{"statusCode": 200, "body": [1], "isBase64Encoded": true}"#)
                .expect_err("an error");
        assert!(matches!(error, UrlEventError::Base64BodyNotString("array")));
    }

    #[test]
    fn malformed_response_descriptions_are_errors() {
        type IsExpected = fn(&UrlEventError) -> bool;
        let cases: [(&[u8], IsExpected); 8] = [
            (b"Hello, world!", |e| {
                matches!(e, UrlEventError::PayloadNotJson(_))
            }),
            (b"", |e| matches!(e, UrlEventError::PayloadNotJson(_))),
            (br#"{"statusCode": 200, "headers": ["a"]}"#, |e| {
                matches!(e, UrlEventError::HeadersNotObject("array"))
            }),
            (br#"{"statusCode": 200, "headers": {"x": {"a": 1}}}"#, |e| {
                matches!(
                    e,
                    UrlEventError::HeaderValueNotScalar { kind: "object", .. }
                )
            }),
            (
                br#"{"statusCode": 200, "headers": {"bad name": "v"}}"#,
                |e| matches!(e, UrlEventError::InvalidHeaderName(_)),
            ),
            (br#"{"statusCode": 200, "headers": {"x": "a\nb"}}"#, |e| {
                matches!(e, UrlEventError::InvalidHeaderValue(_))
            }),
            (br#"{"statusCode": 200, "cookies": "a=1"}"#, |e| {
                matches!(e, UrlEventError::CookiesNotStrings("string"))
            }),
            (br#"{"statusCode": 200, "isBase64Encoded": "yes"}"#, |e| {
                matches!(e, UrlEventError::Base64FlagNotBool("string"))
            }),
        ];
        for (payload, expected) in cases {
            let error = response_from_payload(payload).expect_err("an error");
            assert!(
                expected(&error),
                "{}: {error}",
                String::from_utf8_lossy(payload)
            );
        }
    }
}

#[cfg(test)]
mod properties {
    use proptest::prelude::*;

    use super::*;

    use super::tests::CTX;

    fn method() -> impl Strategy<Value = Method> {
        prop_oneof![
            prop::sample::select(vec![
                Method::GET,
                Method::POST,
                Method::PUT,
                Method::DELETE,
                Method::PATCH,
                Method::OPTIONS,
                Method::HEAD,
            ]),
            "[A-Z]{1,10}".prop_filter_map("a method", |m| Method::from_bytes(m.as_bytes()).ok()),
        ]
    }

    /// Arbitrary headers as an HTTP server would accept them: token names, any visible bytes.
    fn headers() -> impl Strategy<Value = HeaderMap> {
        prop::collection::vec(
            (
                "[a-zA-Z0-9!#$%&'*+.^_`|~-]{1,16}",
                prop::collection::vec(prop_oneof![Just(b'\t'), 0x20u8..0x7f, 0x80u8..=0xff], 0..24),
            ),
            0..10,
        )
        .prop_map(|pairs| {
            let mut map = HeaderMap::new();
            for (name, value) in pairs {
                if let (Ok(n), Ok(v)) = (
                    HeaderName::from_bytes(name.as_bytes()),
                    HeaderValue::from_bytes(&value),
                ) {
                    map.append(n, v);
                }
            }
            map
        })
    }

    fn body_bytes(event: &Value) -> Vec<u8> {
        match (&event["body"], &event["isBase64Encoded"]) {
            (Value::Null, _) => Vec::new(),
            (Value::String(b), Value::Bool(true)) => BASE64.decode(b).expect("base64 body"),
            (Value::String(b), _) => b.as_bytes().to_vec(),
            (other, _) => panic!("body is {other}"),
        }
    }

    proptest! {
        #[test]
        fn any_request_maps_to_an_event_that_carries_it(
            method in method(),
            path in "/[ -~]{0,40}",
            query in prop::option::of("[ -~]{0,40}"),
            headers in headers(),
            body in prop::collection::vec(any::<u8>(), 0..256),
        ) {
            let event = request_event(&method, &path, query.as_deref(), &headers, &body, &CTX);
            prop_assert_eq!(&event["version"], PAYLOAD_VERSION);
            prop_assert_eq!(&event["rawPath"], path.as_str());
            prop_assert_eq!(&event["requestContext"]["http"]["path"], path.as_str());
            prop_assert_eq!(&event["rawQueryString"], query.as_deref().unwrap_or(""));
            prop_assert_eq!(&event["requestContext"]["http"]["method"], method.as_str());
            prop_assert_eq!(body_bytes(&event), body);
            let object = event["headers"].as_object().expect("headers object");
            for name in headers.keys() {
                prop_assert!(object.contains_key(name.as_str()), "{name} is missing");
            }
            prop_assert_eq!(object.len(), headers.keys_len());
            // The event is JSON that parses back to itself.
            let text = event.to_string();
            let again: Value = serde_json::from_str(&text).expect("json");
            prop_assert_eq!(again, event);
        }

        #[test]
        fn any_payload_maps_to_a_response_or_an_error_without_panicking(
            payload in prop::collection::vec(any::<u8>(), 0..256),
        ) {
            let _ = response_from_payload(&payload);
        }

        #[test]
        fn a_described_response_round_trips_and_never_keeps_server_owned_headers(
            status in 100u16..600,
            headers in prop::collection::btree_map(
                prop_oneof![
                    prop::sample::select(vec![
                        "Content-Length", "transfer-encoding", "CONNECTION", "Keep-Alive",
                        "upgrade", "TE", "Trailer", "Proxy-Connection", "x-a", "Content-Type",
                    ]).prop_map(str::to_owned),
                    "x-[a-z0-9-]{1,12}",
                ],
                "[!-~]{0,16}",
                0..8,
            ),
            body in "[ -~]{0,64}",
            encode in any::<bool>(),
        ) {
            let sent_body = if encode { BASE64.encode(&body) } else { body.clone() };
            let payload = json!({
                "statusCode": status,
                "headers": headers,
                "body": sent_body,
                "isBase64Encoded": encode,
            });
            let response = response_from_payload(payload.to_string().as_bytes()).expect("valid");
            prop_assert_eq!(response.status().as_u16(), status);
            prop_assert_eq!(response.body().as_ref(), body.as_bytes());
            for name in response.headers().keys() {
                prop_assert!(!lambent_core::framing::is_server_owned(name.as_str()), "{name} survived");
            }
            for (name, value) in &headers {
                if !lambent_core::framing::is_server_owned(name) {
                    let got = response.headers().get(name.as_str()).map(|v| v.as_bytes());
                    prop_assert_eq!(got, Some(value.as_bytes()));
                }
            }
        }
    }
}
