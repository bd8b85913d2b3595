//! CORS for function URLs, configured like Lambda's `Cors` object: lambent answers preflight
//! requests itself and adds the headers to the function's responses when the origin is allowed.

use http::{HeaderMap, HeaderValue, Method};
use serde::Deserialize;

/// Longest `MaxAge` Lambda accepts, in seconds.
const MAX_AGE_LIMIT_S: u32 = 86_400;

/// Lambda's `Cors` object.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "PascalCase")]
pub struct Cors {
    #[serde(default)]
    allow_credentials: bool,
    #[serde(default)]
    allow_headers: Vec<String>,
    #[serde(default)]
    allow_methods: Vec<String>,
    #[serde(default)]
    allow_origins: Vec<String>,
    #[serde(default)]
    expose_headers: Vec<String>,
    max_age: Option<u32>,
}

fn joined(items: &[String]) -> Option<HeaderValue> {
    if items.is_empty() {
        return None;
    }
    HeaderValue::from_str(&items.join(",")).ok()
}

impl Cors {
    /// Parses and checks a `Cors` object; the error says what to fix.
    pub fn parse(v: &serde_json::Value) -> Result<Self, String> {
        let cors: Cors =
            serde_json::from_value(v.clone()).map_err(|e| format!("Cors is invalid: {e}"))?;
        if let Some(age) = cors.max_age
            && age > MAX_AGE_LIMIT_S
        {
            return Err(format!(
                "Cors.MaxAge {age} is over the limit of {MAX_AGE_LIMIT_S} s"
            ));
        }
        for m in &cors.allow_methods {
            if m != "*" && m.parse::<Method>().is_err() {
                return Err(format!(
                    "Cors.AllowMethods has {m:?}, which is not an HTTP method"
                ));
            }
        }
        let all = cors
            .allow_headers
            .iter()
            .chain(&cors.expose_headers)
            .chain(&cors.allow_origins);
        if let Some(bad) = all.clone().find(|h| HeaderValue::from_str(h).is_err()) {
            return Err(format!(
                "Cors has {bad:?}, which cannot be sent in a header"
            ));
        }
        Ok(cors)
    }

    /// The origin to allow for a request from `origin`, if it is allowed.
    fn allowed_origin(&self, origin: &str) -> Option<HeaderValue> {
        if self.allow_origins.iter().any(|o| o == "*") {
            return Some(if self.allow_credentials {
                HeaderValue::from_str(origin).ok()?
            } else {
                HeaderValue::from_static("*")
            });
        }
        self.allow_origins
            .iter()
            .any(|o| o.eq_ignore_ascii_case(origin))
            .then(|| HeaderValue::from_str(origin).ok())
            .flatten()
    }

    /// The headers of the answer to a preflight request, or `None` when the request is not a
    /// preflight (an `OPTIONS` with `Access-Control-Request-Method`).
    pub fn preflight(&self, method: &Method, headers: &HeaderMap) -> Option<HeaderMap> {
        if method != Method::OPTIONS || !headers.contains_key("access-control-request-method") {
            return None;
        }
        let mut out = HeaderMap::new();
        out.insert(http::header::VARY, HeaderValue::from_static("Origin"));
        let origin = headers
            .get(http::header::ORIGIN)
            .and_then(|o| o.to_str().ok());
        // A preflight is answered here even when the origin is missing or not allowed (then
        // without the allow headers): it never reaches the function.
        let Some(allowed) = origin.and_then(|o| self.allowed_origin(o)) else {
            return Some(out);
        };
        out.insert(http::header::ACCESS_CONTROL_ALLOW_ORIGIN, allowed);
        if let Some(m) = joined(&self.allow_methods) {
            out.insert(http::header::ACCESS_CONTROL_ALLOW_METHODS, m);
        }
        if let Some(h) = joined(&self.allow_headers) {
            out.insert(http::header::ACCESS_CONTROL_ALLOW_HEADERS, h);
        }
        if let Some(age) = self.max_age {
            out.insert(http::header::ACCESS_CONTROL_MAX_AGE, HeaderValue::from(age));
        }
        if self.allow_credentials {
            out.insert(
                http::header::ACCESS_CONTROL_ALLOW_CREDENTIALS,
                HeaderValue::from_static("true"),
            );
        }
        Some(out)
    }

    /// Adds the CORS headers for a request from `origin` to a function's response.
    pub fn apply(&self, origin: Option<&HeaderValue>, response: &mut HeaderMap) {
        let Some(origin) = origin.and_then(|o| o.to_str().ok()) else {
            return;
        };
        response.append(http::header::VARY, HeaderValue::from_static("Origin"));
        let Some(allowed) = self.allowed_origin(origin) else {
            return;
        };
        response.insert(http::header::ACCESS_CONTROL_ALLOW_ORIGIN, allowed);
        if let Some(h) = joined(&self.expose_headers) {
            response.insert(http::header::ACCESS_CONTROL_EXPOSE_HEADERS, h);
        }
        if self.allow_credentials {
            response.insert(
                http::header::ACCESS_CONTROL_ALLOW_CREDENTIALS,
                HeaderValue::from_static("true"),
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn preflight_and_responses_follow_the_configuration() {
        let cors = Cors::parse(&json!({
            "AllowOrigins": ["https://app.example"],
            "AllowMethods": ["GET", "POST"],
            "AllowHeaders": ["content-type"],
            "ExposeHeaders": ["x-trace"],
            "MaxAge": 600
        }))
        .expect("valid");
        let mut req = HeaderMap::new();
        req.insert("origin", HeaderValue::from_static("https://app.example"));
        req.insert(
            "access-control-request-method",
            HeaderValue::from_static("POST"),
        );
        let pre = cors.preflight(&Method::OPTIONS, &req).expect("a preflight");
        assert_eq!(pre["access-control-allow-origin"], "https://app.example");
        assert_eq!(pre["access-control-allow-methods"], "GET,POST");
        assert_eq!(pre["access-control-max-age"], "600");
        assert!(cors.preflight(&Method::GET, &req).is_none());
        let mut other = HeaderMap::new();
        other.insert("origin", HeaderValue::from_static("https://evil.example"));
        other.insert(
            "access-control-request-method",
            HeaderValue::from_static("POST"),
        );
        let pre = cors
            .preflight(&Method::OPTIONS, &other)
            .expect("a preflight");
        assert!(!pre.contains_key("access-control-allow-origin"));
        let mut resp = HeaderMap::new();
        cors.apply(req.get("origin"), &mut resp);
        assert_eq!(resp["access-control-expose-headers"], "x-trace");
    }

    #[test]
    fn bad_configurations_are_refused() {
        assert!(Cors::parse(&json!({"MaxAge": 100000})).is_err());
        assert!(Cors::parse(&json!({"AllowMethods": ["GE T"]})).is_err());
        assert!(Cors::parse(&json!({"Unknown": 1})).is_err());
    }
}
