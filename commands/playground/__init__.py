"""The playground: expbot with a local Slack stand-in and a page in the browser, no workspace needed."""
