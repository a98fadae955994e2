"""The HTTP layer: routes and their guards, error bodies, parameter parsing and Twilio's JSON."""
