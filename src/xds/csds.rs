//! The Client Status Discovery Service (`envoy.service.status.v3`): what each connected proxy was sent and
//! whether it accepted it, from the proxy registry, for existing CSDS tools. Served on the xDS port beside ADS.

use std::pin::Pin;

use envoy_types::pb::envoy::r#type::matcher::v3::string_matcher::MatchPattern;
use envoy_types::pb::envoy::r#type::matcher::v3::{NodeMatcher, StringMatcher};
use envoy_types::pb::envoy::service::status::v3::client_config::GenericXdsConfig;
use envoy_types::pb::envoy::service::status::v3::client_status_discovery_service_server::{
    ClientStatusDiscoveryService, ClientStatusDiscoveryServiceServer,
};
use envoy_types::pb::envoy::service::status::v3::{
    ClientConfig, ClientStatusRequest, ClientStatusResponse, ConfigStatus,
};
use futures::{Stream, StreamExt};
use tonic::{Request, Response, Status, Streaming};

use super::cache::Cache;
use super::status::{ProxyRegistry, ProxyStatus, TypeStatus};

/// Answers CSDS requests from the registry (who is connected, what they acknowledged) and the cache (what
/// each proxy's resources are).
#[derive(Clone, Debug)]
pub struct CsdsServer {
    cache: Cache,
    registry: ProxyRegistry,
}

impl CsdsServer {
    pub fn new(cache: Cache, registry: ProxyRegistry) -> CsdsServer {
        CsdsServer { cache, registry }
    }

    pub fn into_service(self) -> ClientStatusDiscoveryServiceServer<CsdsServer> {
        ClientStatusDiscoveryServiceServer::new(self)
    }

    /// One `ClientConfig` per connected node (its newest stream) that any matcher accepts.
    fn answer(&self, request: &ClientStatusRequest) -> Result<ClientStatusResponse, Status> {
        let mut config = Vec::new();
        for proxy in self.registry.latest_per_node().into_values() {
            if node_matches(&request.node_matchers, &proxy.node_id)? {
                config.push(self.client_config(&proxy, !request.exclude_resource_contents));
            }
        }
        Ok(ClientStatusResponse { config })
    }

    fn client_config(&self, proxy: &ProxyStatus, with_contents: bool) -> ClientConfig {
        // The proxy's resources as the current generation has them; a proxy that cannot be identified has
        // none, and reports only its node.
        let snapshot = self.cache.current().snapshot_for(&proxy.node()).ok();
        let mut generic_xds_configs = Vec::new();
        for (t, status) in &proxy.types {
            let config_status = config_status(status) as i32;
            let Some(snapshot) = &snapshot else { continue };
            for resource in snapshot.all(*t) {
                generic_xds_configs.push(GenericXdsConfig {
                    type_url: t.type_url().to_string(),
                    name: resource.name.clone(),
                    version_info: resource.version.clone(),
                    xds_config: with_contents.then(|| resource.any.clone()),
                    config_status,
                    ..Default::default()
                });
            }
        }
        ClientConfig {
            node: Some(proxy.node()),
            generic_xds_configs,
            ..Default::default()
        }
    }
}

/// The management server's view of one type: rejected wins, then whether the latest response was answered.
pub fn config_status(status: &TypeStatus) -> ConfigStatus {
    if status.rejected {
        return ConfigStatus::Error;
    }
    match (&status.sent_version, &status.acked_version) {
        (None, _) => ConfigStatus::NotSent,
        (Some(sent), Some(acked)) if sent == acked => ConfigStatus::Synced,
        (Some(_), _) => ConfigStatus::Stale,
    }
}

/// OR over the matchers; no matcher means every node. Only the node id is matched: matchers on metadata or
/// by regular expression are refused rather than silently matching everything.
fn node_matches(matchers: &[NodeMatcher], node_id: &str) -> Result<bool, Status> {
    if matchers.is_empty() {
        return Ok(true);
    }
    for m in matchers {
        if !m.node_metadatas.is_empty() {
            return Err(Status::invalid_argument(
                "node_matchers[].node_metadatas is not supported; match on node_id",
            ));
        }
        let matched = match &m.node_id {
            None => true,
            Some(id) => string_matches(id, node_id)?,
        };
        if matched {
            return Ok(true);
        }
    }
    Ok(false)
}

fn string_matches(matcher: &StringMatcher, value: &str) -> Result<bool, Status> {
    let fold = |s: &str| {
        if matcher.ignore_case {
            s.to_lowercase()
        } else {
            s.to_owned()
        }
    };
    let value = fold(value);
    Ok(match &matcher.match_pattern {
        Some(MatchPattern::Exact(p)) => value == fold(p),
        Some(MatchPattern::Prefix(p)) => value.starts_with(&fold(p)),
        Some(MatchPattern::Suffix(p)) => value.ends_with(&fold(p)),
        Some(MatchPattern::Contains(p)) => value.contains(&fold(p)),
        Some(MatchPattern::SafeRegex(_)) | Some(MatchPattern::Custom(_)) => {
            return Err(Status::invalid_argument(
                "node_matchers[].node_id: only exact, prefix, suffix and contains are supported",
            ))
        }
        None => true,
    })
}

type ResponseStream = Pin<Box<dyn Stream<Item = Result<ClientStatusResponse, Status>> + Send>>;

#[tonic::async_trait]
impl ClientStatusDiscoveryService for CsdsServer {
    type StreamClientStatusStream = ResponseStream;

    /// One response per request, in order, until the client closes its side.
    async fn stream_client_status(
        &self,
        request: Request<Streaming<ClientStatusRequest>>,
    ) -> Result<Response<ResponseStream>, Status> {
        let server = self.clone();
        let responses = request
            .into_inner()
            .map(move |req| req.and_then(|req| server.answer(&req)));
        Ok(Response::new(Box::pin(responses)))
    }

    async fn fetch_client_status(
        &self,
        request: Request<ClientStatusRequest>,
    ) -> Result<Response<ClientStatusResponse>, Status> {
        self.answer(request.get_ref()).map(Response::new)
    }
}
