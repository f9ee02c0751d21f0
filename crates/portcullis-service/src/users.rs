//! Managing users' credentials and status: update, disable, enable, set a
//! password, delete. A password change, a disable and a delete revoke every
//! session, refresh token, access token and personal access token of the user at
//! once (R4: offboarding and password change are immediate).

use portcullis_core::secret::SecretString;

use crate::audit::AuditEvent;
use crate::pats::UserView;
use crate::{Authority, ServiceError};

/// Changes to a user; `None` leaves a field as it is.
#[derive(Debug, Clone, Default)]
pub struct UserUpdate {
    /// New email (`Some(None)` clears it).
    pub email: Option<Option<String>>,
    /// New roles (replacing the old).
    pub roles: Option<Vec<String>>,
    /// Require MFA.
    pub mfa_required: Option<bool>,
    /// Enable or disable (disabling revokes everything of the user, each time it
    /// is asked for, even of a user already disabled).
    pub enabled: Option<bool>,
}

/// Checks an email address's shape (delivery is not our business).
pub(crate) fn check_email(e: &str) -> Result<(), ServiceError> {
    let parts: Vec<&str> = e.split('@').collect();
    if e.len() > 254
        || parts.len() != 2
        || parts.iter().any(|p| p.is_empty())
        || e.chars().any(|c| c.is_whitespace() || c.is_control())
    {
        return Err(ServiceError::invalid("email", "not an email address"));
    }
    Ok(())
}

impl Authority {
    pub(crate) async fn check_roles(&self, roles: &[String]) -> Result<(), ServiceError> {
        let known: Vec<String> = self
            .store
            .list_roles()
            .await?
            .into_iter()
            .map(|r| r.name)
            .collect();
        for r in roles {
            if !known.contains(r) {
                return Err(ServiceError::invalid("role", format!("unknown role {r:?}")));
            }
        }
        Ok(())
    }

    /// Applies `change` to a user.
    pub async fn update_user(
        &self,
        user: &str,
        change: UserUpdate,
    ) -> Result<UserView, ServiceError> {
        let mut row = self.user_row(user).await?;
        if let Some(Some(e)) = &change.email {
            check_email(e)?;
        }
        if let Some(r) = &change.roles {
            self.check_roles(r).await?;
        }
        // Every `enabled: false` revokes, not only the one that flips the flag: the
        // flag and the revocation are separate writes, so a disable whose revocation
        // failed halfway is finished by sending it again.
        let disabling = change.enabled == Some(false);
        if let Some(e) = change.email {
            row.email = e;
        }
        if let Some(r) = change.roles {
            row.roles = r.join(" ");
        }
        if let Some(m) = change.mfa_required {
            row.mfa_required = m;
        }
        if let Some(en) = change.enabled {
            row.enabled = en;
        }
        row.updated_at = self.now();
        if !self.store.update_user(&row).await? {
            return Err(ServiceError::NotFound(format!("user {user}")));
        }
        self.pat_cache.clear();
        self.audit(AuditEvent::new("user.updated").subject(row.id.clone()))
            .await?;
        if disabling {
            self.revoke_everything_of(&row.id, "user disabled").await?;
        }
        Ok(row.into())
    }

    /// Sets a user's password (policy-checked, Argon2id), revoking everything the
    /// user holds: a password change ends every session elsewhere.
    pub async fn set_password(
        &self,
        user: &str,
        password: &SecretString,
    ) -> Result<(), ServiceError> {
        crate::passwords::check_policy(password)?;
        let row = self.user_row(user).await?;
        let hash = crate::passwords::hash(&self.hasher, password).await?;
        self.store
            .set_password_hash(&row.id, Some(&hash), self.now())
            .await?;
        self.audit(AuditEvent::new("user.password_changed").subject(row.id.clone()))
            .await?;
        self.revoke_everything_of(&row.id, "password changed").await
    }

    /// Self-service: the signed-in user changes their own password. The current one
    /// is checked like a sign-in (throttled, audited); then everything the user
    /// holds is revoked, this session included. `Ok(Err(_))` is a refusal to show.
    pub async fn change_own_password(
        &self,
        session: &crate::signin::Session,
        current: &SecretString,
        new: &SecretString,
    ) -> Result<Result<(), crate::signin::LoginRefusal>, ServiceError> {
        crate::passwords::check_policy(new)?;
        let ip = crate::audit::current_ip();
        match self
            .login(&session.user.username, current, ip, None)
            .await?
        {
            Ok(u) if u.id == session.user.id => {}
            Ok(_) => return Ok(Err(crate::signin::LoginRefusal::Invalid)),
            Err(r) => return Ok(Err(r)),
        }
        self.set_password(&session.user.id, new).await?;
        Ok(Ok(()))
    }

    /// Deletes a user after revoking everything they hold.
    pub async fn delete_user(&self, user: &str) -> Result<(), ServiceError> {
        let row = self.user_row(user).await?;
        self.revoke_everything_of(&row.id, "user deleted").await?;
        if !self.store.delete_user(&row.id).await? {
            return Err(ServiceError::NotFound(format!("user {user}")));
        }
        self.pat_cache.clear();
        self.audit(
            AuditEvent::new("user.deleted")
                .subject(row.id.clone())
                .details(serde_json::json!({"username": row.username})),
        )
        .await
    }
}
