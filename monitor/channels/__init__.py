"""Alert channels: what a rule's ``notify`` channels are sent (pure: payloads, signatures,
batching decisions). The sending is in :mod:`monitor.service.channel_job`, the SQL in
:mod:`monitor.store.channels`."""
