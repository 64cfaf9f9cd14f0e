# Sourced by the install scripts: sets $cache, where they keep what they
# fetch or build. $EVENTBUS_CACHE, else /var/cache/eventbus when run as root
# (PostgreSQL runs as the postgres user, who cannot enter /root), else
# ~/.cache/eventbus.
if [ -n "${EVENTBUS_CACHE:-}" ]; then
	cache=$EVENTBUS_CACHE
elif [ "$(id -u)" -eq 0 ]; then
	cache=/var/cache/eventbus
else
	cache=${XDG_CACHE_HOME:-${HOME:?HOME or EVENTBUS_CACHE must be set}/.cache}/eventbus
fi
