//! [`AuditAction`]: what an audit row says happened, as a type. Stored as the same text as
//! before it was a type (`put`, `login_lockout`...), so existing audit rows read unchanged.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// What an [`AuditRow`](crate::backend::AuditRow) says happened. Stored and serialised as its
/// [name](Self::as_str) (`put`, `tenant_delete`, `login_lockout`...); a name this build does
/// not know (a row written by a newer build, or by an application through
/// [`Backend::append_audit`](crate::backend::Backend::append_audit)) reads back as
/// [`Other`](Self::Other), never as an error.
///
/// ```
/// use credvault::backend::AuditAction;
///
/// assert_eq!(AuditAction::from_name("tenant_delete"), AuditAction::TenantDelete);
/// assert_eq!(AuditAction::TenantDelete.as_str(), "tenant_delete");
/// let other = AuditAction::from_name("app_login");
/// assert_eq!(other.as_str(), "app_login");
/// assert!(matches!(other, AuditAction::Other(_)));
/// assert_eq!(serde_json::to_string(&AuditAction::Put).unwrap(), "\"put\"");
/// ```
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[non_exhaustive]
pub enum AuditAction {
    /// `put`: a record stored.
    Put,
    /// `get`: a record read.
    Get,
    /// `update`: a record replaced (compare-and-swap).
    Update,
    /// `open_failed`: a record read (`get`, `refresh`, an export) whose sealed payload did not
    /// open, or did not decode as its type. The outcome is `failed: ` and the class
    /// (`tampered`, `unknown_key_version`, `invalid_payload`), never the bytes; the caller got
    /// the error (an export lists the record as unreadable).
    OpenFailed,
    /// `upsert`: a record stored or replaced, whichever its absence or presence called for.
    Upsert,
    /// `delete`: a record deleted.
    Delete,
    /// `refresh`: a token refreshed through the application's closure (outcome `failed` when
    /// the closure failed and the lease was released).
    Refresh,
    /// `refresh_lease`: a refresh lease taken on a token.
    RefreshLease,
    /// `revoke`: a credential revoked at its provider while disconnecting (or `failed: ...`).
    Revoke,
    /// `disconnect`: a credential deleted by a disconnect.
    Disconnect,
    /// `schedule_purge`: derived data scheduled for the purge job.
    SchedulePurge,
    /// `purge`: a record deleted by the purge job.
    Purge,
    /// `export_json`: a tenant exported as JSON.
    ExportJson,
    /// `export_csv`: a tenant's metadata exported as CSV.
    ExportCsv,
    /// `export_metadata`: a tenant exported as JSON without its secrets (nothing decrypted).
    ExportMetadata,
    /// `vault_key_create`: a vault-wide key (the throttle's pseudonym key) made and wrapped
    /// under the KEK.
    VaultKeyCreate,
    /// `vault_key_rewrap`: a vault-wide key rewrapped under the primary KEK.
    VaultKeyRewrap,
    /// `tenant_create`: a tenant's first data key made.
    TenantCreate,
    /// `tenant_delete`: a tenant's deletion requested (grace period starts).
    TenantDelete,
    /// `tenant_restore`: a tenant's deletion cancelled.
    TenantRestore,
    /// `tenant_shred`: a tenant's shred secret destroyed (or the purge refused).
    TenantShred,
    /// `tenant_purge`: a tenant's rows deleted by the purge job.
    TenantPurge,
    /// `dek_rotate`: a tenant given a new data key.
    DekRotate,
    /// `dek_rewrap`: a data key wrapped again under the primary KEK.
    DekRewrap,
    /// `dek_destroy`: a retired data key erased.
    DekDestroy,
    /// `dek_min_version`: a tenant's minimum data key version set.
    DekMinVersion,
    /// `reencrypt`: records of a tenant moved to its current data key (one row per tenant
    /// and batch; the outcome counts them).
    Reencrypt,
    /// `fernet_key_export`: a tenant's Fernet keys given out (the outcome names the data key
    /// versions), so a service outside credvault can decrypt its Fernet-sealed records.
    FernetKeyExport,
    /// `login_lockout`: a login throttle lockout started.
    LoginLockout,
    /// `login_unlock`: a login throttle lock cleared by support.
    LoginUnlock,
    /// A name this build does not know, kept as it was stored.
    Other(OtherAction),
}

/// The name of an [`AuditAction`] this build does not know. Made only by
/// [`AuditAction::from_name`], so that a known name is never held as `Other`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct OtherAction(String);

impl OtherAction {
    /// The stored name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Every known action with its stored name: one table for both directions.
static NAMES: [(AuditAction, &str); 30] = [
    (AuditAction::Put, "put"),
    (AuditAction::OpenFailed, "open_failed"),
    (AuditAction::VaultKeyCreate, "vault_key_create"),
    (AuditAction::VaultKeyRewrap, "vault_key_rewrap"),
    (AuditAction::Upsert, "upsert"),
    (AuditAction::Get, "get"),
    (AuditAction::Update, "update"),
    (AuditAction::Delete, "delete"),
    (AuditAction::Refresh, "refresh"),
    (AuditAction::RefreshLease, "refresh_lease"),
    (AuditAction::Revoke, "revoke"),
    (AuditAction::Disconnect, "disconnect"),
    (AuditAction::SchedulePurge, "schedule_purge"),
    (AuditAction::Purge, "purge"),
    (AuditAction::ExportJson, "export_json"),
    (AuditAction::ExportCsv, "export_csv"),
    (AuditAction::ExportMetadata, "export_metadata"),
    (AuditAction::TenantCreate, "tenant_create"),
    (AuditAction::TenantDelete, "tenant_delete"),
    (AuditAction::TenantRestore, "tenant_restore"),
    (AuditAction::TenantShred, "tenant_shred"),
    (AuditAction::TenantPurge, "tenant_purge"),
    (AuditAction::DekRotate, "dek_rotate"),
    (AuditAction::DekRewrap, "dek_rewrap"),
    (AuditAction::DekDestroy, "dek_destroy"),
    (AuditAction::DekMinVersion, "dek_min_version"),
    (AuditAction::Reencrypt, "reencrypt"),
    (AuditAction::FernetKeyExport, "fernet_key_export"),
    (AuditAction::LoginLockout, "login_lockout"),
    (AuditAction::LoginUnlock, "login_unlock"),
];

impl AuditAction {
    /// The name stored in the audit log's `action` column.
    pub fn as_str(&self) -> &str {
        if let Self::Other(other) = self {
            return other.as_str();
        }
        NAMES
            .iter()
            .find(|(action, _)| action == self)
            .map_or("", |(_, name)| name)
    }

    /// The action a stored name stands for; an unknown name is [`Other`](Self::Other).
    pub fn from_name(name: &str) -> Self {
        NAMES.iter().find(|(_, n)| *n == name).map_or_else(
            || Self::Other(OtherAction(name.to_owned())),
            |(a, _)| a.clone(),
        )
    }
}

impl fmt::Display for AuditAction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.as_str())
    }
}

impl From<&str> for AuditAction {
    fn from(name: &str) -> Self {
        Self::from_name(name)
    }
}

impl From<String> for AuditAction {
    fn from(name: String) -> Self {
        Self::from_name(&name)
    }
}

impl PartialEq<str> for AuditAction {
    fn eq(&self, other: &str) -> bool {
        self.as_str() == other
    }
}

impl PartialEq<&str> for AuditAction {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

impl Serialize for AuditAction {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for AuditAction {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Ok(Self::from_name(&String::deserialize(d)?))
    }
}

#[cfg(test)]
mod tests {
    use super::{AuditAction, NAMES};

    #[test]
    fn every_known_name_reads_back_as_its_action() {
        for (action, name) in NAMES.iter() {
            assert_eq!(action.as_str(), *name);
            assert_eq!(&AuditAction::from_name(name), action);
            assert!(!matches!(action, AuditAction::Other(_)));
        }
        let mut names: Vec<_> = NAMES.iter().map(|(_, n)| n).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), NAMES.len(), "a name is listed twice");
    }

    #[test]
    fn an_unknown_name_is_kept_as_it_was_stored() {
        let action = AuditAction::from_name("export");
        assert!(matches!(action, AuditAction::Other(_)));
        assert_eq!(action.as_str(), "export");
        assert_eq!(action, "export");
        assert_eq!(
            serde_json::from_str::<AuditAction>("\"dek_rotate\"").unwrap(),
            AuditAction::DekRotate
        );
    }
}
