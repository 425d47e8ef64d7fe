//! Resolving each event's Event ID field as it arrives: a connection remembers the row ids of
//! its recent events that references may point at, so a lookup later is an index probe on the
//! row id, not a search.

use std::collections::VecDeque;

use crate::jip3::events::EventId;
use crate::jip3::links::is_referable;
use crate::jip3::Event;
use crate::messages::Reference;

/// Referable events remembered per connection (16 bytes each; 64 KiB per connection). A
/// reference to an older one is dangling: references point back seconds, rarely further.
pub const REMEMBERED: usize = 4096;

/// A connection's recent referable events, oldest first (event IDs only grow on a connection).
#[derive(Debug, Default)]
pub struct RecentReferable {
    kept: VecDeque<(EventId, i64, u8)>,
}

impl RecentReferable {
    /// Where `event`'s reference points (mutable only because the links are read through
    /// `Event::reference_mut`).
    pub fn resolve(&self, event: &mut Event) -> Reference {
        let Some((&mut target, types)) = event.reference_mut() else {
            return Reference::None;
        };
        if types.is_empty() {
            return Reference::None;
        }
        match self.kept.binary_search_by_key(&target, |&(id, _, _)| id) {
            Ok(i) if types.contains(&self.kept[i].2) => Reference::Row(self.kept[i].1),
            _ => Reference::Dangling,
        }
    }

    /// Remembers an event if references may point at its type.
    pub fn remember(&mut self, event_id: EventId, row: i64, discriminator: u8) {
        if !is_referable(discriminator) {
            return;
        }
        if self.kept.len() == REMEMBERED {
            self.kept.pop_front();
        }
        self.kept.push_back((event_id, row, discriminator));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn connected_out(connecting_event_id: EventId) -> Event {
        Event::ConnectedOut {
            connecting_event_id,
        }
    }

    #[test]
    fn references_resolve_to_rows_of_the_right_type_or_are_dangling() {
        let mut recent = RecentReferable::default();
        recent.remember(5, 500, 24); // ConnectingOut
        recent.remember(6, 600, 21); // ConnectingIn
        recent.remember(7, 700, 11); // BestBlockChanged: nothing refers to it
        assert_eq!(recent.kept.len(), 2);
        assert_eq!(recent.resolve(&mut connected_out(5)), Reference::Row(500));
        assert_eq!(
            recent.resolve(&mut connected_out(6)),
            Reference::Dangling,
            "wrong type"
        );
        assert_eq!(
            recent.resolve(&mut connected_out(99)),
            Reference::Dangling,
            "never sent"
        );
        let mut no_link = Event::SyncStatusChanged { synced: true };
        assert_eq!(recent.resolve(&mut no_link), Reference::None);
        for i in 0..REMEMBERED as u64 {
            recent.remember(10 + i, 1000 + i as i64, 24);
        }
        assert_eq!(
            recent.resolve(&mut connected_out(5)),
            Reference::Dangling,
            "forgotten"
        );
    }
}
