//! Fleets (docs/fleets.md): placing a new game on an instance, and the instances' own use
//! cases: register, heartbeat, drain, remove, list, and declaring the silent ones lost.

use sqlx::Acquire;
use uuid::Uuid;

use super::{Lobby, LobbyResult};
use crate::{
    domain::{
        GameState, LobbyError, NoGameServer, Player, Product,
        fleet::{Instance, InstanceSpec, InstanceState, Placement, valid_instance_id},
    },
    store::{
        instances::{self, InstanceRow, Removal, Wanted},
        intents,
    },
};

/// Rounds of placing before a create gives up on instances other creates keep locked.
const PLACE_ATTEMPTS: u32 = 5;

/// What registering did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Registered {
    New,
    Again,
}

impl Lobby {
    /// Step 0 of a create: the create's intent, placed on the instance with the most room that
    /// is up, within the creator's open-games limit. `tried` are instances this create already
    /// failed to reach.
    pub(super) async fn place(
        &self,
        product: &Product,
        player: &Player,
        game_id: Uuid,
        region: Option<&str>,
        tried: &[Uuid],
    ) -> LobbyResult<Placement> {
        self.ensure_configured().await?;
        let limit = self.config.max_open_games_per_player;
        let mut exclude = self.game_servers.breakers().excluded();
        exclude.extend_from_slice(tried);
        let w = Wanted {
            product_id: &product.product_id,
            region,
            exclude: &exclude,
            timeout_secs: self.config.instance_timeout.as_secs_f64(),
            limit: i64::from(limit),
        };
        // One statement, a transaction of its own: the common case (docs/performance.md).
        let placed = self
            .warm
            .run(async |c| instances::place(c, game_id, &player.user_id, &w).await)
            .await?;
        if let Some(p) = placed {
            return Ok(p);
        }
        // Nothing placed: find out why under the creator's lock, and look again while the
        // only reason is room on instances other creates held.
        let mut conn = self.db.acquire().await?;
        let mut tx = conn.begin().await?;
        if limit > 0 {
            intents::lock_creator(&mut tx, &player.user_id).await?;
        }
        for attempt in 0..PLACE_ATTEMPTS {
            if limit > 0 && !intents::below_limit(&mut tx, &player.user_id, limit).await? {
                return Err(LobbyError::TooManyOpenGames { limit });
            }
            let (up, room) = instances::availability(&mut *tx, &w).await?;
            if let Some(r) = region.filter(|_| !up) {
                if !instances::region_known(&mut *tx, &product.product_id, r).await? {
                    return Err(LobbyError::UnknownRegion {
                        product_id: product.product_id.clone(),
                        region: r.to_string(),
                    });
                }
            }
            if !(up && room) {
                return Err(LobbyError::NoGameServer {
                    product_id: product.product_id.clone(),
                    region: region.map(str::to_string),
                    why: if up {
                        NoGameServer::Full
                    } else {
                        NoGameServer::NoneUp
                    },
                });
            }
            let placed = match instances::place(&mut *tx, game_id, &player.user_id, &w).await? {
                Some(p) => Some(p),
                // Past the first round, wait for the best instance's lock rather than pass
                // over every instance other creates hold.
                None if attempt > 0 => {
                    instances::place_counted_waiting(&mut tx, game_id, &player.user_id, &w).await?
                }
                None => None,
            };
            if let Some(p) = placed {
                tx.commit().await?;
                return Ok(p);
            }
        }
        Err(LobbyError::NoGameServer {
            product_id: product.product_id.clone(),
            region: region.map(str::to_string),
            why: NoGameServer::Full,
        })
    }

    /// The configured instances are in the database: done once per process, at start or
    /// before the first use of the fleet.
    pub async fn ensure_configured(&self) -> LobbyResult<()> {
        self.configured
            .get_or_try_init(|| self.sync_configured_instances())
            .await
            .map(|_| ())
    }

    /// Makes each product's configured instances what the configuration says.
    async fn sync_configured_instances(&self) -> LobbyResult<()> {
        let mut conn = self.db.acquire().await?;
        for product in self.products.iter() {
            instances::sync_configured(&mut conn, &product.product_id, &product.instances())
                .await?;
        }
        Ok(())
    }

    /// Registers an instance of the product (or registers it again).
    pub async fn register_instance(
        &self,
        product: &Product,
        spec: InstanceSpec,
    ) -> LobbyResult<(Instance, Registered)> {
        let spec = spec.check()?;
        self.ensure_configured().await?;
        let registered = instances::register(&self.db, &product.product_id, &spec)
            .await?
            .ok_or_else(|| LobbyError::InstanceConfigured {
                instance_id: spec.id.clone(),
            })?;
        tracing::info!(
            product = product.product_id,
            instance = spec.id,
            url = spec.url,
            new = registered,
            "game-server instance registered"
        );
        let instance = self.instance(product, &spec.id).await?;
        Ok((
            instance,
            if registered {
                Registered::New
            } else {
                Registered::Again
            },
        ))
    }

    pub async fn heartbeat(&self, product: &Product, instance_id: &str) -> LobbyResult<Instance> {
        check_id(instance_id)?;
        if !instances::heartbeat(&self.db, &product.product_id, instance_id).await? {
            return Err(not_found(product, instance_id));
        }
        self.instance(product, instance_id).await
    }

    pub async fn drain(&self, product: &Product, instance_id: &str) -> LobbyResult<Instance> {
        check_id(instance_id)?;
        if !instances::drain(&self.db, &product.product_id, instance_id).await? {
            return Err(not_found(product, instance_id));
        }
        tracing::info!(
            product = product.product_id,
            instance = instance_id,
            "game-server instance draining"
        );
        self.instance(product, instance_id).await
    }

    /// Removes a registered instance; games it still holds end as if it were lost.
    pub async fn remove_instance(&self, product: &Product, instance_id: &str) -> LobbyResult<()> {
        check_id(instance_id)?;
        let mut tx = self.db.begin().await?;
        match instances::remove(&mut tx, &product.product_id, instance_id).await? {
            Removal::Removed(key) => {
                let ended = instances::end_games_of(&mut tx, &[key], self.ended_secs()).await?;
                tx.commit().await?;
                tracing::info!(
                    product = product.product_id,
                    instance = instance_id,
                    games_ended = ended.len(),
                    "game-server instance removed"
                );
                self.fence().await;
                Ok(())
            }
            Removal::Configured => Err(LobbyError::InstanceConfigured {
                instance_id: instance_id.to_string(),
            }),
            Removal::NotFound => Err(not_found(product, instance_id)),
        }
    }

    /// The product's instances, each id's latest incarnation.
    pub async fn instances(&self, product: &Product) -> LobbyResult<Vec<Instance>> {
        self.ensure_configured().await?;
        let rows = instances::list(&self.db, Some(&product.product_id)).await?;
        Ok(rows.into_iter().map(|r| self.view(r)).collect())
    }

    /// Every product's instances (for the metrics).
    pub async fn all_instances(&self) -> LobbyResult<Vec<(String, Instance)>> {
        let rows = instances::list(&self.db, None).await?;
        Ok(rows
            .into_iter()
            .map(|r| (r.product_id.clone(), self.view(r)))
            .collect())
    }

    async fn instance(&self, product: &Product, instance_id: &str) -> LobbyResult<Instance> {
        self.instances(product)
            .await?
            .into_iter()
            .find(|i| i.id == instance_id)
            .ok_or_else(|| not_found(product, instance_id))
    }

    fn view(&self, r: InstanceRow) -> Instance {
        Instance {
            healthy: r.state != InstanceState::Lost
                && self.game_servers.breakers().healthy(r.server_key),
            server_key: r.server_key,
            id: r.instance_id,
            url: r.url,
            socket_url: r.socket_url,
            capacity: r.capacity,
            region: r.region,
            state: r.state,
            configured: r.configured,
            games: r.games,
            heartbeat_at: r.heartbeat_at,
            registered_at: r.registered_at,
        }
    }

    fn ended_secs(&self) -> f64 {
        self.config.expiry.secs(GameState::Ended)
    }
}

/// An id no instance can have (it would not even reach the database intact) is a bad request.
fn check_id(instance_id: &str) -> LobbyResult<()> {
    if valid_instance_id(instance_id) {
        return Ok(());
    }
    Err(LobbyError::InvalidInstance(
        "the instance id must be 1 to 100 letters, digits, '-', '_' or '.'".into(),
    ))
}

fn not_found(product: &Product, instance_id: &str) -> LobbyError {
    LobbyError::InstanceNotFound {
        instance_id: instance_id.to_string(),
        product_id: product.product_id.clone(),
    }
}
