//! Finds the configured store a request belongs to, from what each
//! provider sends: Shopify's shop domain or access token, Carriyo's tenant
//! or key, Redo's store id.

use std::collections::HashMap;

use actix_web::http::header::HeaderMap;

use crate::config::{
    CarriyoAuth, CarriyoSettings, DefinedProviderSettings, RateLimit, RedoSettings, Settings,
    ShopifySettings,
};
use crate::providers::carriyo_auth;
use crate::providers::verify::secret_matches;

/// A store's name with one provider's settings for it.
#[derive(Debug, Clone)]
pub struct StoreRef<T> {
    pub name: String,
    pub settings: T,
}

impl<T: Clone> StoreRef<T> {
    fn new(name: &str, settings: &T) -> Self {
        Self {
            name: name.to_owned(),
            settings: settings.clone(),
        }
    }
}

/// The enabled stores, indexed by what each provider identifies them by.
#[derive(Debug, Default, Clone)]
pub struct StoreDirectory {
    shopify: HashMap<String, StoreRef<ShopifySettings>>,
    carriyo: HashMap<String, StoreRef<CarriyoSettings>>,
    redo: HashMap<String, StoreRef<RedoSettings>>,
    /// By provider, then store name: the data-defined providers each
    /// store has enabled.
    defined: HashMap<String, HashMap<String, StoreRef<DefinedProviderSettings>>>,
    /// By store name: only the stores with `[stores.NAME.limits]`.
    limits: HashMap<String, RateLimit>,
}

impl StoreDirectory {
    /// Indexes the enabled stores of `settings`.
    pub fn new(settings: &Settings) -> Self {
        let mut directory = Self::default();
        for (name, store) in settings.enabled_stores() {
            if let Some(s) = &store.shopify {
                directory
                    .shopify
                    .insert(s.shop_domain.to_ascii_lowercase(), StoreRef::new(name, s));
            }
            if let Some(c) = &store.carriyo {
                directory
                    .carriyo
                    .insert(c.tenant_id.to_ascii_lowercase(), StoreRef::new(name, c));
            }
            if let Some(r) = &store.redo {
                directory
                    .redo
                    .insert(r.store_id.clone(), StoreRef::new(name, r));
            }
            for (provider, p) in store.providers.iter().filter(|(_, p)| p.enabled) {
                directory
                    .defined
                    .entry(provider.clone())
                    .or_default()
                    .insert(name.clone(), StoreRef::new(name, p));
            }
            if let Some(limit) = store.limits {
                directory.limits.insert(name.clone(), limit);
            }
        }
        directory
    }

    /// The store whose shop domain this is (case-insensitive, as domains are).
    pub fn shopify_by_domain(&self, domain: &str) -> Option<&StoreRef<ShopifySettings>> {
        self.shopify.get(&domain.to_ascii_lowercase())
    }

    /// The store that issued this REST access token.
    pub fn shopify_by_access_token(&self, token: &str) -> Option<&StoreRef<ShopifySettings>> {
        self.shopify
            .values()
            .find(|s| secret_matches(&s.settings.access_tokens, token))
    }

    /// The store with this Carriyo tenant id.
    pub fn carriyo_by_tenant(&self, tenant: &str) -> Option<&StoreRef<CarriyoSettings>> {
        self.carriyo.get(&tenant.to_ascii_lowercase())
    }

    /// The store whose Carriyo credentials the request carries, in that
    /// store's scheme.
    pub fn carriyo_by_credentials(
        &self,
        headers: &HeaderMap,
    ) -> Option<&StoreRef<CarriyoSettings>> {
        self.carriyo
            .values()
            .find(|s| carriyo_auth::presents(&s.settings.auth, headers))
    }

    /// Every enabled store's Carriyo scheme.
    pub fn carriyo_schemes(&self) -> impl Iterator<Item = &CarriyoAuth> {
        self.carriyo.values().map(|s| &s.settings.auth)
    }

    /// The store's ingest limit, if it has one.
    pub fn limit(&self, store: &str) -> Option<&RateLimit> {
        self.limits.get(store)
    }

    /// Store `store`'s settings for data-defined provider `provider`, when
    /// the store is enabled and has enabled the provider.
    pub fn defined(
        &self,
        provider: &str,
        store: &str,
    ) -> Option<&StoreRef<DefinedProviderSettings>> {
        self.defined.get(provider)?.get(store)
    }

    /// The store with this Redo store id.
    pub fn redo_by_store_id(&self, store_id: &str) -> Option<&StoreRef<RedoSettings>> {
        self.redo.get(store_id)
    }
}
