use reqwest::Url;
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use serde::de::DeserializeOwned;

use crate::http::{ApiError, directory_url, send_json};

const SERVICE: &str = "GitLab";

/// A client of one GitLab instance's REST API (`<url>/api/v4`), authenticated with
/// `PRIVATE-TOKEN`.
#[derive(Clone)]
pub struct GitlabClient {
    http: reqwest::Client,
    base: Url,
    token: SecretString,
}

/// What GitLab says about the API token regwarden uses.
#[derive(Clone, Debug, Deserialize)]
pub struct ApiTokenInfo {
    pub name: String,
    #[serde(default)]
    pub scopes: Vec<String>,
    pub expires_at: Option<String>,
    #[serde(default)]
    pub active: bool,
}

impl GitlabClient {
    pub fn new(http: reqwest::Client, base: &Url, token: SecretString) -> Self {
        Self {
            http,
            base: directory_url(base, "api/v4"),
            token,
        }
    }

    async fn get<T: DeserializeOwned>(&self, path: &str) -> Result<T, ApiError> {
        let url = self.base.join(path).map_err(|e| ApiError::Permanent {
            service: SERVICE,
            status: 0,
            message: format!("cannot build the URL for {path}: {e}"),
        })?;
        let request = self
            .http
            .get(url)
            .header("PRIVATE-TOKEN", self.token.expose_secret());
        send_json(SERVICE, request, &["message", "error"]).await
    }

    /// The API token's own record: proves the token works and shows its scopes and expiry.
    pub async fn current_token(&self) -> Result<ApiTokenInfo, ApiError> {
        self.get("personal_access_tokens/self").await
    }
}
