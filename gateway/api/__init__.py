"""The HTTP layer: routes, middlewares, parameter parsing and Twilio's JSON."""
