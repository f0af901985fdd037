"""Cursor on Target to TAK: drones, tracks, alerts and zones on the agencies' own screens (issue 17).

model         CotMessage (one encoded-to-be event), CotEncoding
events        borderwatch's values → CoT XML events (pure)
destinations  `--cot URL` → CotDestination (udp multicast/unicast, tcp, tls with a .p12)
sender        CotSender: one thread, each destination connected through pytak, with backoff
feed          CotFeed: what to send when (1 Hz at most per object, nothing for the unmoved,
              kept fresh while alive, zones once a minute)
sink          SendCot: a pipeline sink that feeds a CotFeed from each frame's result
"""
