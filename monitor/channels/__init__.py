"""Alert channels: what a rule's ``notify`` channels are sent (:mod:`.payloads`, pure:
each kind's request for one message, signed and escaped). Which alerts go into which
message, and the deliveries' state, are in :mod:`monitor.store.channels`; the sending
in :mod:`monitor.service.channel_job`."""
