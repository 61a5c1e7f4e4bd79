"""Where and when a photo was taken: EXIF, GPX, NMEA, interpolation, distances on the earth.

Shared by the vehicle client (uploader/) and the service; imports nothing of either."""
