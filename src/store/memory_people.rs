//! The people trees of the [`super::memory::MemoryStore`]: the same rules as the sled store's
//! (an invitation accepted once, the security log's hash chain), in memory.

use std::collections::BTreeMap;
use std::sync::{Mutex, MutexGuard};

use super::StoreError;
use super::people::{InviteRecord, NewSecurityEvent, PeopleStore, PersonRecord, SecurityEvent, SessionRecord};

#[derive(Default)]
struct Maps {
    people: BTreeMap<String, PersonRecord>,
    invites: BTreeMap<String, InviteRecord>,
    sessions: BTreeMap<String, SessionRecord>,
    seclog: Vec<SecurityEvent>,
}

/// See the module documentation. One mutex: every operation is atomic.
#[derive(Default)]
pub struct MemoryPeople {
    maps: Mutex<Maps>,
}

impl MemoryPeople {
    fn maps(&self) -> MutexGuard<'_, Maps> {
        // Every operation checks before it writes, so a panic leaves no half change.
        self.maps.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl PeopleStore for MemoryPeople {
    fn people(&self) -> Result<Vec<PersonRecord>, StoreError> {
        Ok(self.maps().people.values().cloned().collect())
    }

    fn person(&self, id: &str) -> Result<PersonRecord, StoreError> {
        self.maps().people.get(id).cloned().ok_or(StoreError::NotFound)
    }

    fn put_person(&self, p: &PersonRecord) -> Result<(), StoreError> {
        self.maps().people.insert(p.id.clone(), p.clone());
        Ok(())
    }

    fn invite(&self, hash: &str) -> Result<InviteRecord, StoreError> {
        self.maps().invites.get(hash).cloned().ok_or(StoreError::NotFound)
    }

    fn put_invite(&self, i: &InviteRecord) -> Result<(), StoreError> {
        self.maps().invites.insert(i.hash.clone(), i.clone());
        Ok(())
    }

    fn accept_invite(&self, i: &InviteRecord, p: &PersonRecord) -> Result<(), StoreError> {
        let mut m = self.maps();
        if m.invites.get(&i.hash).is_some_and(|cur| cur.used_at.is_some()) {
            return Err(StoreError::Conflict);
        }
        m.invites.insert(i.hash.clone(), i.clone());
        m.people.insert(p.id.clone(), p.clone());
        Ok(())
    }

    fn session(&self, hash: &str) -> Result<SessionRecord, StoreError> {
        self.maps().sessions.get(hash).cloned().ok_or(StoreError::NotFound)
    }

    fn put_session(&self, s: &SessionRecord) -> Result<(), StoreError> {
        self.maps().sessions.insert(s.hash.clone(), s.clone());
        Ok(())
    }

    fn touch_session(&self, s: &SessionRecord) -> Result<(), StoreError> {
        self.put_session(s)
    }

    fn delete_session(&self, hash: &str) -> Result<(), StoreError> {
        self.maps().sessions.remove(hash);
        Ok(())
    }

    fn delete_sessions_of(&self, person_id: &str) -> Result<usize, StoreError> {
        let mut m = self.maps();
        let before = m.sessions.len();
        m.sessions.retain(|_, s| s.person_id != person_id);
        Ok(before - m.sessions.len())
    }

    fn append_security(&self, e: NewSecurityEvent) -> Result<SecurityEvent, StoreError> {
        let mut m = self.maps();
        let ev = SecurityEvent::next(m.seclog.last(), e);
        m.seclog.push(ev.clone());
        Ok(ev)
    }

    fn security_log(&self) -> Result<Vec<SecurityEvent>, StoreError> {
        Ok(self.maps().seclog.clone())
    }
}
