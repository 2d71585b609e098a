use reqwest::Url;
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use serde::de::DeserializeOwned;

use crate::http::{ApiError, directory_url, send_json};

const SERVICE: &str = "Qovery";

/// A client of Qovery's REST API, authenticated with an organization API token
/// (`Authorization: Token ...`).
#[derive(Clone)]
pub struct QoveryClient {
    http: reqwest::Client,
    base: Url,
    token: SecretString,
}

#[derive(Clone, Debug, Deserialize)]
pub struct Organization {
    pub id: String,
    pub name: String,
}

impl QoveryClient {
    pub fn new(http: reqwest::Client, base: &Url, token: SecretString) -> Self {
        Self {
            http,
            base: directory_url(base, ""),
            token,
        }
    }

    async fn get<T: DeserializeOwned>(&self, path: &str) -> Result<T, ApiError> {
        let url = self.base.join(path).map_err(|e| ApiError::Permanent {
            service: SERVICE,
            status: 0,
            message: format!("cannot build the URL for {path}: {e}"),
        })?;
        let request = self.http.get(url).header(
            reqwest::header::AUTHORIZATION,
            format!("Token {}", self.token.expose_secret()),
        );
        send_json(SERVICE, request, &["detail", "message"]).await
    }

    /// `GET /organization/{id}`: checks the token and the organization id together.
    pub async fn organization(&self, organization_id: &str) -> Result<Organization, ApiError> {
        self.get(&format!("organization/{organization_id}")).await
    }
}
