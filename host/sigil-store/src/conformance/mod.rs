//! The datastore conformance suite: one set of cases every [`DataStore`] must pass.
//!
//! A backend's test binary implements [`Fixture`] (a fresh, isolated database per case) and
//! expands [`store_conformance_tests!`](crate::store_conformance_tests) — plus
//! [`persistence_conformance_tests!`](crate::persistence_conformance_tests) when its data
//! outlives the store — inside a module named after the backend, so each case shows up as
//! `<backend>::<case>` in `cargo test`'s output:
//!
//! ```text
//! mod sqlite_file {
//!     sigil_store::store_conformance_tests!(crate::sqlite_file_fixture);
//!     sigil_store::persistence_conformance_tests!(crate::sqlite_file_fixture);
//! }
//! ```
//!
//! Cases panic on failure, like any test. Test-only: enabled by the `conformance` feature.
#![expect(
    clippy::expect_used,
    reason = "a test suite: a failed call is a failed case, reported with its context"
)]

mod agents;
mod bundles;
mod ca;
mod entries;
mod entry_lists;
mod entry_scan;
mod events;
mod persistence;
mod records;
pub mod support;

use std::future::Future;
use std::sync::Arc;

use async_trait::async_trait;

use crate::{DataStore, Result};

pub use agents::*;
pub use bundles::*;
pub use ca::*;
pub use entries::*;
pub use entry_lists::*;
pub use entry_scan::*;
pub use events::*;
pub use persistence::*;
pub use records::*;

/// One isolated database for one case.
#[async_trait]
pub trait Fixture: Send + Sync {
    /// Opens a store on the fixture's database. For persistent backends, opening again opens
    /// the same database (as a server restart would).
    async fn open(&self) -> Result<Arc<dyn DataStore>>;

    /// The schema version recorded in the database, read directly.
    async fn schema_version(&self) -> i64;

    /// Overwrites the recorded schema version directly (to simulate a newer sigil).
    async fn set_schema_version(&self, version: i64);

    /// Removes the database. Called after the case, whether it passed or not.
    async fn teardown(&self);
}

/// Runs a case that needs only a store, then tears the fixture down and re-raises the case's
/// panic, if any.
pub async fn run_store_case<F, Fut>(fixture: Box<dyn Fixture>, case: F)
where
    F: FnOnce(Arc<dyn DataStore>) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let fixture: Arc<dyn Fixture> = Arc::from(fixture);
    let outcome = match fixture.open().await {
        Ok(store) => tokio::spawn(case(store)).await,
        Err(e) => {
            fixture.teardown().await;
            panic!("cannot open the store under test: {e}");
        }
    };
    fixture.teardown().await;
    finish(outcome);
}

/// Runs a case that opens stores itself, then tears the fixture down.
pub async fn run_fixture_case<F, Fut>(fixture: Box<dyn Fixture>, case: F)
where
    F: FnOnce(Arc<dyn Fixture>) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let fixture: Arc<dyn Fixture> = Arc::from(fixture);
    let outcome = tokio::spawn(case(Arc::clone(&fixture))).await;
    fixture.teardown().await;
    finish(outcome);
}

fn finish(outcome: std::result::Result<(), tokio::task::JoinError>) {
    if let Err(e) = outcome {
        match e.try_into_panic() {
            Ok(panic) => std::panic::resume_unwind(panic),
            Err(e) => panic!("case did not finish: {e}"),
        }
    }
}

/// Expands to one `#[tokio::test]` per store case. `$fixture` is the path of an
/// `async fn() -> Box<dyn Fixture>`. The calling crate needs `tokio` with `macros` and
/// `rt-multi-thread`.
#[macro_export]
macro_rules! store_conformance_tests {
    ($fixture:path) => {
        $crate::__conformance_cases!(run_store_case, $fixture;
            entry_create_assigns_created_at_and_revision,
            entry_create_round_trips_every_field,
            entry_create_keeps_client_assigned_id,
            entry_duplicate_is_already_exists,
            entry_duplicate_id_is_already_exists,
            entry_same_identity_other_selectors_is_allowed,
            entry_invalid_fields_are_invalid_argument,
            entry_fetch_missing_is_none,
            entry_update_changes_only_masked_fields,
            entry_update_every_field,
            entry_update_to_duplicate_is_refused,
            entry_update_missing_is_not_found,
            entry_update_invalid_is_refused_and_changes_nothing,
            entry_delete_returns_the_entry,
            entry_delete_missing_is_not_found,
            entry_batch_create_stores_all,
            entry_batch_create_failure_leaves_nothing,
            entry_batch_create_duplicate_within_batch_is_refused,
            entry_batch_create_invalid_entry_names_field,
            entry_concurrent_duplicates_create_once,
            entry_prune_removes_expired,
            entry_list_by_spiffe_id_parent_id_and_hint,
            entry_list_by_selectors_exact,
            entry_list_by_selectors_subset,
            entry_list_by_selectors_superset,
            entry_list_by_selectors_any,
            entry_list_by_federates_with_modes,
            entry_list_filters_combine_with_and,
            entry_list_paging_has_no_duplicates_or_gaps,
            entry_list_paging_with_filter,
            entry_list_invalid_requests_are_refused,
            entry_count_matches_filters,
            entry_scan_returns_every_entry_once,
            entry_scan_invalid_requests_are_refused,
            agent_create_fetch_round_trip,
            agent_create_duplicate_is_already_exists,
            agent_invalid_is_invalid_argument,
            agent_update_changes_only_masked_fields,
            agent_update_and_delete_missing_are_not_found,
            agent_delete_returns_the_agent,
            agent_delete_join_token_takes_its_alias_entries,
            agent_list_filters,
            agent_list_by_selectors_modes,
            agent_list_paging_and_count,
            bundle_create_fetch_round_trip,
            bundle_create_duplicate_and_invalid_are_refused,
            bundle_list_paging_and_count,
            bundle_update_changes_only_masked_fields,
            bundle_set_replaces_or_creates,
            bundle_append_merges_or_creates,
            bundle_delete_restrict_refuses_while_federated,
            bundle_delete_delete_removes_federated_entries,
            bundle_delete_dissociate_keeps_entries,
            bundle_delete_missing_is_not_found,
            bundle_prune_removes_expired_authorities,
            join_token_create_fetch_delete,
            join_token_take_is_single_use,
            join_token_take_expired_is_refused_and_deleted,
            join_token_prune_removes_expired,
            ca_journal_set_fetch_replace,
            federation_relationship_create_fetch_delete,
            federation_relationship_stores_its_bundle,
            federation_relationship_update_changes_only_masked_fields,
            federation_relationship_list_paging,
            events_follow_entry_writes_in_order,
            events_follow_agent_writes_in_order,
            events_follow_batch_prune_and_bundle_deletes,
            events_not_written_by_failed_writes,
            events_list_after_limit_and_prune,
        );
    };
}

/// Expands to one `#[tokio::test]` per persistence case, for backends whose data outlives a
/// store (files, PostgreSQL).
#[macro_export]
macro_rules! persistence_conformance_tests {
    ($fixture:path) => {
        $crate::__conformance_cases!(run_fixture_case, $fixture;
            reopen_keeps_data,
            migrations_are_idempotent_on_reopen,
            schema_too_new_is_refused,
            ca_rotation_survives_restarts,
        );
    };
}

#[doc(hidden)]
#[macro_export]
macro_rules! __conformance_cases {
    ($runner:ident, $fixture:path; $($case:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $case() {
                $crate::conformance::$runner($fixture().await, $crate::conformance::$case).await;
            }
        )*
    };
}
