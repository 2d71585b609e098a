//! What a registry's token realm answers, read without trusting it: the token in its JSON
//! answer, and the actions the JWT's `access` claim grants on a repository. A client cannot
//! verify the JWT's signature (the key is the registry's); the claims only explain a refusal,
//! and the registry has the last word on the call that follows.

use serde::Deserialize;

/// Why a realm's 200 answer holds no token.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum TokenAnswerError {
    #[error("not a JSON token answer: {0}")]
    NotJson(String),
    #[error("no `token` (or `access_token`) in the answer")]
    NoToken,
}

/// The token of a realm's answer: `token`, else `access_token` (Docker's token spec allows
/// either), never empty.
pub fn token_answer(body: &[u8]) -> Result<String, TokenAnswerError> {
    #[derive(Deserialize)]
    struct TokenResponse {
        token: Option<String>,
        access_token: Option<String>,
    }
    let answer: TokenResponse =
        serde_json::from_slice(body).map_err(|e| TokenAnswerError::NotJson(e.to_string()))?;
    answer
        .token
        .filter(|t| !t.is_empty())
        .or(answer.access_token)
        .filter(|t| !t.is_empty())
        .ok_or(TokenAnswerError::NoToken)
}

/// The actions the JWT `token` grants on `repository`, sorted, without repeats; `None` when
/// the token is not a JWT (some registries hand out opaque tokens).
pub fn granted_actions(token: &str, repository: &str) -> Option<Vec<String>> {
    #[derive(Deserialize)]
    struct Claims {
        #[serde(default)]
        access: Option<Vec<AccessEntry>>,
    }
    #[derive(Deserialize)]
    struct AccessEntry {
        #[serde(rename = "type", default)]
        kind: String,
        #[serde(default)]
        name: String,
        #[serde(default)]
        actions: Vec<String>,
    }
    let claims: Claims = jsonwebtoken::dangerous::insecure_decode_claims(token).ok()?;
    let mut granted: Vec<String> = claims
        .access
        .unwrap_or_default()
        .into_iter()
        .filter(|e| e.kind == "repository" && e.name == repository)
        .flat_map(|e| e.actions)
        .collect();
    granted.sort();
    granted.dedup();
    Some(granted)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_token_is_token_else_access_token() {
        assert_eq!(token_answer(br#"{"token":"a"}"#), Ok("a".into()));
        assert_eq!(token_answer(br#"{"access_token":"b"}"#), Ok("b".into()));
        assert_eq!(
            token_answer(br#"{"token":"","access_token":"b"}"#),
            Ok("b".into())
        );
        assert_eq!(
            token_answer(br#"{"token":""}"#),
            Err(TokenAnswerError::NoToken)
        );
        assert!(matches!(
            token_answer(b"<html>"),
            Err(TokenAnswerError::NotJson(_))
        ));
    }

    #[test]
    fn granted_actions_are_those_on_the_repository() {
        use base64::Engine;
        let part = |v: serde_json::Value| {
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string())
        };
        let jwt = format!(
            "{}.{}.c2ln",
            part(serde_json::json!({"alg": "RS256", "typ": "JWT"})),
            part(serde_json::json!({"access": [
                {"type": "repository", "name": "acme/api", "actions": ["push", "pull", "pull"]},
                {"type": "repository", "name": "acme/web", "actions": ["*"]},
            ]}))
        );
        assert_eq!(
            granted_actions(&jwt, "acme/api"),
            Some(vec!["pull".to_string(), "push".to_string()])
        );
        assert_eq!(granted_actions(&jwt, "acme/other"), Some(vec![]));
        assert_eq!(granted_actions("opaque-token", "acme/api"), None);
    }
}
