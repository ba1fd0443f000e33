#!/usr/bin/env bash
# A real one-host OpenStack on 127.0.0.1 with nova-lxd as its hypervisor.
#
#   tools/cloud.sh up       install what is missing, start what is not
#                           running, register what is not registered
#   tools/cloud.sh down     stop the services (containers keep running;
#                           the next `up` brings the same cloud back)
#   tools/cloud.sh purge    down, delete every container and all state
#                           (keeps the services' venv and the images)
#   tools/cloud.sh restart  down, then up (after a configuration change)
#   tools/cloud.sh status   one line per service
#   tools/cloud.sh logs [SERVICE [LINES]]
#
# Services (each its own process; WSGI apps under gunicorn): keystone
# :5000, glance :9292 (file store), placement :8778, nova-api :8774,
# nova-conductor, nova-scheduler, nova-compute-lxd (unprivileged user
# nova-lxd; the engine runs in its privsep daemon, started with sudo),
# RabbitMQ :5672 and, unless NOVA_LXD_CLOUD_DB=sqlite, MariaDB :3306,
# both from Debian and started here (no init system needed), and a
# null network API :9696 (tools/cloud_null_network.py: nova still lists
# ports on delete and reboot; servers boot with --nic none).
#
# Everything lives under NOVA_LXD_CLOUD_DIR (/var/lib/nova-lxd-cloud):
# venv/ etc/ log/ run/ data/ and openrc (admin credentials, PATH).
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
CLOUD=${NOVA_LXD_CLOUD_DIR:-/var/lib/nova-lxd-cloud}
VENV=$CLOUD/venv
ETC=$CLOUD/etc
LOG=$CLOUD/log
RUN=$CLOUD/run
DATA=$CLOUD/data
SVC_USER=${NOVA_LXD_CLOUD_USER:-nova-lxd}
HOST_IP=127.0.0.1
REGION=RegionOne
PYTHON=/usr/bin/python3
# The OpenStack release of nova 34.0.0 (2026.2): the services' versions
# and the complete constraints their venv was resolved and tested with.
PINS=(keystone==30.0.0 glance==33.0.0 openstack-placement==16.0.0
      nova==34.0.0 python-openstackclient==10.5.0 gunicorn==27.0.1
      PyMySQL==1.2.4)
CONSTRAINTS=$REPO/tools/cloud-constraints.txt

declare -A PORT=([keystone]=5000 [glance]=9292 [placement]=8778
                 [nova-api]=8774 [null-network]=9696 [rabbitmq]=5672
                 [mariadb]=3306)
SERVICES=(mariadb rabbitmq keystone glance placement null-network
          nova-api nova-conductor nova-scheduler nova-compute)

export DEBIAN_FRONTEND=noninteractive

say() { printf 'cloud: %s\n' "$*"; }
die() { printf 'cloud: error: %s\n' "$*" >&2; exit 1; }

# ini FILE SECTION OPTION=VALUE...: set options (one python run).
ini() {
    local file=$1 section=$2
    shift 2
    "$PYTHON" - "$file" "$section" "$@" <<'EOF'
import configparser, os, sys
path, section, pairs = sys.argv[1], sys.argv[2], sys.argv[3:]
cp = configparser.RawConfigParser(strict=False, interpolation=None)
cp.optionxform = str
if os.path.exists(path):
    cp.read(path)
if section != "DEFAULT" and not cp.has_section(section):
    cp.add_section(section)
for pair in pairs:
    key, _, value = pair.partition("=")
    cp.set(section, key, value)
tmp = path + ".tmp"
with open(tmp, "w") as f:
    cp.write(f)
os.replace(tmp, path)
EOF
}

# DevStack's iniset, for the shared library: iniset [-sudo] FILE SECTION
# OPTION VALUE.
iniset() {
    [ "$1" = -sudo ] && shift
    ini "$1" "$2" "$3=$4"
}

openstack() { "$VENV/bin/openstack" "$@"; }

# The shared library's settings (devstack/lib/nova-lxd).
export NOVA_LXD_DIR=$REPO
export NOVA_LXD_ENGINE_ROOT=$CLOUD/lxc
export NOVA_LXD_IMAGE_CACHE=${NOVA_LXD_IMAGE_CACHE:-$CLOUD/images}
export NOVA_LXD_HELPER_COMMAND=
export NOVA_LXD_SUDO=
# shellcheck source=devstack/lib/nova-lxd disable=SC1091
. "$REPO/devstack/lib/nova-lxd"

# -- the database backend --------------------------------------------------

db_backend() {
    if [ -s "$ETC/db-backend" ]; then
        cat "$ETC/db-backend"
    else
        echo "${NOVA_LXD_CLOUD_DB:-mariadb}"
    fi
}

db_url() {
    local name=$1
    if [ "$(db_backend)" = sqlite ]; then
        echo "sqlite:///$DATA/$name.sqlite"
    else
        echo "mysql+pymysql://openstack:$(secret db)@$HOST_IP:3306/$name?charset=utf8mb4"
    fi
}

# -- secrets ---------------------------------------------------------------

secret() {
    local f=$ETC/secrets/$1
    if [ ! -s "$f" ]; then
        install -d -m 0750 -g "$SVC_USER" "$ETC/secrets"
        (umask 077; od -An -N16 -tx1 /dev/urandom | tr -d ' \n' >"$f")
    fi
    cat "$f"
}

# -- installation ----------------------------------------------------------

is_installed() {
    [ "$(dpkg-query -W -f='${db:Status-Abbrev}' "$1" 2>/dev/null)" = "ii " ]
}

install_packages() {
    local pkgs missing=() p
    read -r -a pkgs <<<"$(nova_lxd_packages)"
    pkgs+=(rabbitmq-server python3-venv curl)
    [ "$(db_backend)" = mariadb ] && pkgs+=(mariadb-server)
    for p in "${pkgs[@]}"; do
        is_installed "$p" || missing+=("$p")
    done
    [ "${#missing[@]}" -eq 0 ] && return
    say "apt-get install ${missing[*]}"
    apt-get update -qq
    # Debian starts the servers it installs where it can: they are ours.
    printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
    chmod 0755 /usr/sbin/policy-rc.d
    apt-get install -y -qq --no-install-recommends "${missing[@]}" \
        >/dev/null || { rm -f /usr/sbin/policy-rc.d; return 1; }
    rm -f /usr/sbin/policy-rc.d
}

ensure_user() {
    id -u "$SVC_USER" >/dev/null 2>&1 && return
    say "adding system user $SVC_USER"
    useradd --system --user-group --home-dir "$CLOUD/home" \
        --no-create-home --shell /usr/sbin/nologin "$SVC_USER"
}

ensure_dirs() {
    install -d -m 0755 "$CLOUD" "$RUN" "$LOG"
    install -d -m 0750 -g "$SVC_USER" "$ETC"
    local d
    for d in "$DATA" "$CLOUD/home" "$CLOUD/glance" "$CLOUD/nova" \
            "$CLOUD/keystone" "$CLOUD/nova/instances"; do
        install -d -m 0750 -o "$SVC_USER" -g "$SVC_USER" "$d"
    done
    for d in keystone glance placement nova; do
        install -d -m 0750 -g "$SVC_USER" "$ETC/$d"
    done
    nova_lxd_prepare_engine_root
}

source_hash() {
    (cd "$REPO" && find nova_lxd devstack/tools setup.cfg setup.py \
        requirements.txt -type f ! -name '*.pyc' -print0 | sort -z \
        | xargs -0 sha256sum) | sha256sum | cut -d' ' -f1
}

ensure_venv() {
    local want stamp=$VENV/.cloud-install
    want=$( { printf '%s\n' "${PINS[@]}"; cat "$CONSTRAINTS" \
              "$REPO/requirements.txt"; "$PYTHON" --version; } \
            | sha256sum | cut -d' ' -f1)
    local pip=("$VENV/bin/python" -m pip install -q
               --disable-pip-version-check --root-user-action=ignore)
    if [ ! -x "$VENV/bin/python" ]; then
        say "venv: creating $VENV"
        "$PYTHON" -m venv "$VENV"
    fi
    if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
        say "venv: installing ${PINS[*]} (a few minutes, once)"
        "${pip[@]}" --upgrade pip
        "${pip[@]}" -c "$CONSTRAINTS" "${PINS[@]}" -r "$REPO/requirements.txt"
        echo "$want" >"$stamp"
        rm -f "$VENV/.nova-lxd-source"
    fi
    want=$(source_hash)
    if [ "$(cat "$VENV/.nova-lxd-source" 2>/dev/null)" != "$want" ]; then
        say "venv: installing nova-lxd from $REPO"
        "${pip[@]}" --no-deps --force-reinstall "$REPO"
        echo "$want" >"$VENV/.nova-lxd-source"
        # A running nova-compute (and its privsep daemon) still has the
        # old code loaded: start_services starts it again.
        stop nova-compute
    fi
}

# -- configuration ---------------------------------------------------------

authtoken() {  # FILE USERNAME: [keystone_authtoken] of a service
    ini "$1" keystone_authtoken \
        "www_authenticate_uri=http://$HOST_IP:5000" \
        "auth_url=http://$HOST_IP:5000" auth_type=password \
        project_domain_name=Default user_domain_name=Default \
        project_name=service "username=$2" "password=$(secret "$2")" \
        "region_name=$REGION" service_token_roles_required=True
}

service_auth() {  # FILE SECTION USERNAME: password auth for a client
    ini "$1" "$2" "auth_url=http://$HOST_IP:5000" auth_type=password \
        project_domain_name=Default user_domain_name=Default \
        project_name=service "username=$3" "password=$(secret "$3")" \
        "region_name=$REGION"
}

rabbit_url() {
    echo "rabbit://openstack:$(secret rabbitmq)@$HOST_IP:5672/"
}

configure() {
    local f
    # keystone
    f=$ETC/keystone/keystone.conf
    ini "$f" DEFAULT use_stderr=True
    ini "$f" database "connection=$(db_url keystone)"
    ini "$f" token provider=fernet
    ini "$f" fernet_tokens "key_repository=$CLOUD/keystone/fernet-keys"
    ini "$f" fernet_receipts "key_repository=$CLOUD/keystone/fernet-keys"
    ini "$f" credential "key_repository=$CLOUD/keystone/credential-keys"
    # glance
    f=$ETC/glance/glance-api.conf
    cp "$VENV/etc/glance/glance-api-paste.ini" "$ETC/glance/"
    ini "$f" DEFAULT use_stderr=True enabled_backends=file:file \
        "registry_host=$HOST_IP"
    ini "$f" database "connection=$(db_url glance)"
    ini "$f" glance_store default_backend=file
    ini "$f" file "filesystem_store_datadir=$CLOUD/glance/images/"
    ini "$f" os_glance_staging_store \
        "filesystem_store_datadir=$CLOUD/glance/staging/"
    ini "$f" os_glance_tasks_store \
        "filesystem_store_datadir=$CLOUD/glance/tasks/"
    ini "$f" paste_deploy flavor=keystone
    ini "$f" oslo_concurrency "lock_path=$CLOUD/glance/locks"
    authtoken "$f" glance
    # placement
    f=$ETC/placement/placement.conf
    ini "$f" DEFAULT use_stderr=True
    ini "$f" placement_database "connection=$(db_url placement)"
    ini "$f" api auth_strategy=keystone
    authtoken "$f" placement
    # nova: one file for every nova service
    f=$ETC/nova/nova.conf
    cp "$VENV/etc/nova/api-paste.ini" "$ETC/nova/"
    ini "$f" DEFAULT use_stderr=True "transport_url=$(rabbit_url)" \
        "my_ip=$HOST_IP" "state_path=$CLOUD/nova" \
        "instances_path=$CLOUD/nova/instances" \
        resume_guests_state_on_host_boot=True \
        instance_usage_audit=False heal_instance_info_cache_interval=-1 \
        cpu_allocation_ratio=32.0 graceful_shutdown_timeout=10
    ini "$f" api auth_strategy=keystone
    ini "$f" wsgi "api_paste_config=$ETC/nova/api-paste.ini"
    ini "$f" api_database "connection=$(db_url nova_api)"
    ini "$f" database "connection=$(db_url nova_cell1)"
    ini "$f" conductor workers=1
    ini "$f" scheduler workers=1 discover_hosts_in_cells_interval=30
    ini "$f" oslo_concurrency "lock_path=$CLOUD/nova/locks"
    ini "$f" oslo_messaging_notifications driver=noop
    authtoken "$f" nova
    service_auth "$f" placement nova
    service_auth "$f" neutron nova
    ini "$f" neutron "endpoint_override=http://$HOST_IP:9696"
    ini "$f" glance "endpoint_override=http://$HOST_IP:9292"
    ini "$f" vnc enabled=False
    ini "$f" compute "max_concurrent_builds=20"
    ini "$f" quota instances=100 cores=200 ram=409600
    NOVA_LXD_HELPER_COMMAND=$(nova_lxd_helper_command "$VENV/bin" "$f")
    nova_lxd_configure_nova "$f"
    nova_lxd_write_sudoers "$SVC_USER" "$VENV/bin" \
        /etc/sudoers.d/nova-lxd-cloud "$f"
    chgrp -R "$SVC_USER" "$ETC"
    find "$ETC" -type f -exec chmod 0640 {} +
    gunicorn_conf keystone 5000 keystone.wsgi.api:application
    gunicorn_conf glance 9292 glance.wsgi.api:application
    gunicorn_conf placement 8778 placement.wsgi.api:application
    gunicorn_conf nova 8774 nova.wsgi.osapi_compute:application
    write_openrc
}

write_openrc() {
    cat >"$CLOUD/openrc" <<EOF
# Admin credentials of the nova-lxd one-host cloud: . $CLOUD/openrc
export OS_AUTH_URL=http://$HOST_IP:5000/v3
export OS_IDENTITY_API_VERSION=3
export OS_USERNAME=admin
export OS_PASSWORD=$(secret admin)
export OS_PROJECT_NAME=admin
export OS_USER_DOMAIN_NAME=Default
export OS_PROJECT_DOMAIN_NAME=Default
export OS_REGION_NAME=$REGION
export OS_COMPUTE_API_VERSION=2.37
export PATH=$VENV/bin:\$PATH
EOF
    chmod 0600 "$CLOUD/openrc"
}

# -- processes -------------------------------------------------------------

pid_of() {
    local f=$RUN/$1.pid pid
    [ -f "$f" ] || return 1
    pid=$(cat "$f")
    [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null || return 1
    echo "$pid"
}

# spawn NAME COMMAND...: COMMAND in a session of its own, in the
# background, output appended to log/NAME.log, its pid in run/NAME.pid.
spawn() {
    local name=$1
    shift
    rm -f "$RUN/$name.pid"
    # shellcheck disable=SC2016
    setsid bash -c 'echo $$ >"$0"; exec "$@"' "$RUN/$name.pid" "$@" \
        >>"$LOG/$name.log" 2>&1 </dev/null &
    local i
    for i in $(seq 1 50); do
        [ -s "$RUN/$name.pid" ] && return
        sleep 0.1
    done
}

# start NAME USER [VAR=VALUE...] COMMAND...: a daemon of its own session,
# output to log/NAME.log, pid in run/NAME.pid; nothing if it runs.
start() {
    local name=$1 user=$2
    shift 2
    pid_of "$name" >/dev/null && return
    say "starting $name"
    local home=$CLOUD/home
    [ "$user" = root ] && home=/root
    spawn "$name" setpriv --reuid="$user" --regid="$user" --init-groups \
        env -i "HOME=$home" LANG=C.UTF-8 \
        "PATH=$VENV/bin:/usr/sbin:/usr/bin:/sbin:/bin" "$@"
}

stop() {
    local name=$1 pid i
    pid=$(pid_of "$name") || { rm -f "$RUN/$name.pid"; return 0; }
    say "stopping $name ($pid)"
    kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null || :
    for i in $(seq 1 60); do
        kill -0 "$pid" 2>/dev/null || break
        [ "$i" -eq 60 ] && kill -KILL -- "-$pid" 2>/dev/null
        sleep 0.25
    done
    rm -f "$RUN/$name.pid"
}

wait_port() {  # NAME PORT [SECONDS]
    local i
    for i in $(seq 1 $((${3:-60} * 4))); do
        if (exec 3<>"/dev/tcp/$HOST_IP/$2") 2>/dev/null; then
            return 0
        fi
        pid_of "$1" >/dev/null || die "$1 exited: see $LOG/$1.log"
        sleep 0.25
    done
    die "$1 is not listening on $2 after ${3:-60} s: see $LOG/$1.log"
}

# gunicorn_conf NAME PORT MODULE:APP: the service's gunicorn settings.
# Its argv is emptied: keystone, glance and nova parse sys.argv with
# oslo.config and refuse gunicorn's arguments.
gunicorn_conf() {
    cat >"$ETC/$1/gunicorn.conf.py" <<EOF
# gunicorn settings of $1 (written by tools/cloud.sh)
import sys

sys.argv[1:] = []
wsgi_app = "$3"
bind = "$HOST_IP:$2"
workers = 2
worker_class = "gthread"
threads = 4
timeout = 300
graceful_timeout = 10
# No keep-alive: a client that reuses a connection at the moment the
# server closes it for idling gets "Remote end closed connection" (seen
# with keystoneauth under load); on loopback a new connection is free.
keepalive = 0
accesslog = "-"
EOF
}

gunicorn_cmd() {  # NAME
    echo "$VENV/bin/gunicorn --config $ETC/$1/gunicorn.conf.py"
}

start_mariadb() {
    [ "$(db_backend)" = mariadb ] || return 0
    local dir=$CLOUD/mysql
    if [ ! -d "$dir/mysql" ]; then
        say "mariadb: initialising $dir"
        install -d -o mysql -g mysql -m 0750 "$dir"
        mariadb-install-db --user=mysql --datadir="$dir" \
            --auth-root-authentication-method=socket \
            >"$LOG/mariadb-install.log" 2>&1
    fi
    install -d -o mysql -g mysql "$RUN/mysqld"
    if ! pid_of mariadb >/dev/null; then
        say "starting mariadb"
        spawn mariadb /usr/sbin/mariadbd --no-defaults \
            --user=mysql --datadir="$dir" --bind-address="$HOST_IP" \
            --port=3306 --socket="$RUN/mysqld/mysqld.sock" \
            --pid-file="$RUN/mysqld/mysqld.pid" \
            --max-connections=1000 --innodb-buffer-pool-size=256M \
            --innodb-flush-log-at-trx-commit=2 \
            --character-set-server=utf8mb4 \
            --collation-server=utf8mb4_general_ci \
            --skip-name-resolve
    fi
    wait_port mariadb 3306 60
    local db sql=""
    for db in keystone glance placement nova_api nova_cell0 nova_cell1; do
        sql+="CREATE DATABASE IF NOT EXISTS $db CHARACTER SET utf8mb4;"
    done
    sql+="CREATE USER IF NOT EXISTS 'openstack'@'127.0.0.1'"
    sql+=" IDENTIFIED BY '$(secret db)';"
    sql+="GRANT ALL ON *.* TO 'openstack'@'127.0.0.1'; FLUSH PRIVILEGES;"
    mariadb --socket="$RUN/mysqld/mysqld.sock" -uroot -e "$sql"
}

rabbitmqctl() {
    setpriv --reuid=rabbitmq --regid=rabbitmq --init-groups \
        env "HOME=$CLOUD/rabbitmq" "RABBITMQ_NODENAME=nova-lxd@localhost" \
        "ERL_EPMD_ADDRESS=$HOST_IP" /usr/lib/rabbitmq/bin/rabbitmqctl "$@"
}

start_rabbitmq() {
    local dir=$CLOUD/rabbitmq
    install -d -o rabbitmq -g rabbitmq -m 0750 "$dir" "$LOG/rabbitmq"
    [ -f "$dir/rabbitmq.conf" ] || cat >"$dir/rabbitmq.conf" <<EOF
listeners.tcp.default = $HOST_IP:5672
loopback_users = none
EOF
    [ -f "$dir/enabled_plugins" ] || echo '[].' >"$dir/enabled_plugins"
    chown rabbitmq:rabbitmq "$dir/rabbitmq.conf" "$dir/enabled_plugins"
    if ! pid_of rabbitmq >/dev/null; then
        say "starting rabbitmq"
        spawn rabbitmq setpriv --reuid=rabbitmq \
            --regid=rabbitmq --init-groups env -i \
            PATH=/usr/sbin:/usr/bin:/sbin:/bin LANG=C.UTF-8 \
            "HOME=$dir" "RABBITMQ_NODENAME=nova-lxd@localhost" \
            "RABBITMQ_MNESIA_BASE=$dir/mnesia" \
            "RABBITMQ_LOG_BASE=$LOG/rabbitmq" \
            "RABBITMQ_CONFIG_FILE=$dir/rabbitmq" \
            "RABBITMQ_ENABLED_PLUGINS_FILE=$dir/enabled_plugins" \
            "ERL_EPMD_ADDRESS=$HOST_IP" \
            "RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS=-kernel inet_dist_use_interface {127,0,0,1}" \
            /usr/lib/rabbitmq/bin/rabbitmq-server
    fi
    wait_port rabbitmq 5672 120
    if ! rabbitmqctl list_users 2>/dev/null | grep -q '^openstack'; then
        rabbitmqctl add_user openstack "$(secret rabbitmq)" >/dev/null
        rabbitmqctl set_permissions openstack '.*' '.*' '.*' >/dev/null
    fi
}

as_svc() {  # a command as the services' user, in the venv
    setpriv --reuid="$SVC_USER" --regid="$SVC_USER" --init-groups \
        env "HOME=$CLOUD/home" "PATH=$VENV/bin:/usr/sbin:/usr/bin:/bin" "$@"
}

stamped() {  # NAME COMMAND...: run once per cloud
    local stamp=$DATA/.done-$1
    shift
    [ -f "$stamp" ] && return
    "$@"
    touch "$stamp"
}

keystone_setup() {
    local c=$ETC/keystone/keystone.conf
    as_svc keystone-manage --config-file "$c" db_sync
    as_svc keystone-manage --config-file "$c" fernet_setup \
        --keystone-user "$SVC_USER" --keystone-group "$SVC_USER"
    as_svc keystone-manage --config-file "$c" credential_setup \
        --keystone-user "$SVC_USER" --keystone-group "$SVC_USER"
    as_svc keystone-manage --config-file "$c" bootstrap \
        --bootstrap-password "$(secret admin)" \
        --bootstrap-admin-url "http://$HOST_IP:5000/v3/" \
        --bootstrap-internal-url "http://$HOST_IP:5000/v3/" \
        --bootstrap-public-url "http://$HOST_IP:5000/v3/" \
        --bootstrap-region-id "$REGION"
}

register_services() {
    # shellcheck source=/dev/null
    . "$CLOUD/openrc"
    openstack project show service >/dev/null 2>&1 \
        || openstack project create service --domain Default >/dev/null
    local svc type url
    for svc in nova glance placement; do
        openstack user show "$svc" >/dev/null 2>&1 \
            || openstack user create "$svc" --domain Default \
                --password "$(secret "$svc")" >/dev/null
        openstack role add --project service --user "$svc" admin
        openstack role add --project service --user "$svc" service
    done
    while read -r svc type url; do
        openstack service show "$type" >/dev/null 2>&1 \
            || openstack service create --name "$svc" "$type" >/dev/null
        local iface
        for iface in public internal admin; do
            openstack endpoint create --region "$REGION" "$type" "$iface" \
                "$url" >/dev/null
        done
    done <<EOF
nova compute http://$HOST_IP:8774/v2.1
glance image http://$HOST_IP:9292
placement placement http://$HOST_IP:8778
EOF
}

db_sync_all() {
    as_svc glance-manage --config-file "$ETC/glance/glance-api.conf" \
        db_sync >/dev/null
    as_svc placement-manage --config-file "$ETC/placement/placement.conf" \
        db sync
    local n=$ETC/nova/nova.conf
    as_svc nova-manage --config-file "$n" api_db sync
    as_svc nova-manage --config-file "$n" cell_v2 map_cell0 \
        --database_connection "$(db_url nova_cell0)"
    as_svc nova-manage --config-file "$n" db sync
    as_svc nova-manage --config-file "$n" cell_v2 list_cells \
        | grep -q ' cell1 ' \
        || as_svc nova-manage --config-file "$n" cell_v2 create_cell \
            --name cell1 >/dev/null
}

create_flavors() {
    local name ram disk existing
    existing=$(openstack flavor list --all -f value -c Name)
    while read -r name ram disk; do
        grep -qxF "$name" <<<"$existing" && continue
        openstack flavor create "$name" --vcpus 1 --ram "$ram" \
            --disk "$disk" --public >/dev/null
    done <<EOF
c1.tiny 128 1
c1.small 512 2
c1.medium 1024 4
EOF
}

start_services() {
    start_mariadb
    start_rabbitmq
    stamped keystone-setup keystone_setup >>"$LOG/setup.log" 2>&1
    local e
    e="OS_KEYSTONE_CONFIG_DIR=$ETC/keystone"
    # shellcheck disable=SC2046
    start keystone "$SVC_USER" "$e" \
        $(gunicorn_cmd keystone)
    wait_port keystone 5000
    stamped register-services register_services
    [ -f "$DATA/.done-db-sync" ] \
        || say "databases: schema sync (once; output in $LOG/setup.log)"
    stamped db-sync db_sync_all >>"$LOG/setup.log" 2>&1
    # shellcheck disable=SC2046
    start glance "$SVC_USER" "OS_GLANCE_CONFIG_DIR=$ETC/glance" \
        $(gunicorn_cmd glance)
    # shellcheck disable=SC2046
    start placement "$SVC_USER" "OS_PLACEMENT_CONFIG_DIR=$ETC/placement" \
        $(gunicorn_cmd placement)
    start null-network "$SVC_USER" "$VENV/bin/python" \
        "$REPO/tools/cloud_null_network.py" 9696
    # shellcheck disable=SC2046
    start nova-api "$SVC_USER" "OS_NOVA_CONFIG_DIR=$ETC/nova" \
        $(gunicorn_cmd nova)
    start nova-conductor "$SVC_USER" nova-conductor \
        --config-file "$ETC/nova/nova.conf"
    start nova-scheduler "$SVC_USER" nova-scheduler \
        --config-file "$ETC/nova/nova.conf"
    start nova-compute "$SVC_USER" nova-compute-lxd \
        --config-file "$ETC/nova/nova.conf"
    wait_port glance 9292
    wait_port placement 8778
    wait_port null-network 9696
    wait_port nova-api 8774
}

compute_registered() {
    openstack hypervisor list -f value -c "Hypervisor Hostname" \
        2>/dev/null | grep -qxF "$(hostname)"
}

wait_compute() {
    # shellcheck source=/dev/null
    . "$CLOUD/openrc"
    local i
    for i in $(seq 1 120); do
        if openstack compute service list --service nova-compute \
                -f value -c State 2>/dev/null | grep -q up; then
            compute_registered && return 0
            as_svc nova-manage --config-file "$ETC/nova/nova.conf" \
                cell_v2 discover_hosts >>"$LOG/setup.log" 2>&1
            compute_registered && return 0
        fi
        pid_of nova-compute >/dev/null \
            || die "nova-compute exited: see $LOG/nova-compute.log"
        sleep 1
    done
    die "nova-compute did not come up: see $LOG/nova-compute.log"
}

cmd_up() {
    [ "$(id -u)" -eq 0 ] || die "run as root"
    local t0=$SECONDS
    install_packages
    nova_lxd_ensure_subids root
    ensure_user
    ensure_dirs
    if [ ! -s "$ETC/db-backend" ]; then
        local backend
        backend=$(db_backend)
        echo "$backend" >"$ETC/db-backend"
    fi
    ensure_venv
    configure
    start_services
    wait_compute
    create_flavors
    say "images: building (cached in $NOVA_LXD_IMAGE_CACHE) and uploading"
    nova_lxd_upload_images "$VENV/bin/python"
    say "up in $((SECONDS - t0)) s; database: $(db_backend)"
    say "credentials: . $CLOUD/openrc   logs: $LOG/   (tools/cloud.sh logs)"
}

cmd_down() {
    # The OpenStack services at once (each may take a few seconds to
    # finish what it does), then the broker and the database.
    local s
    for s in "${SERVICES[@]}"; do
        case "$s" in
            mariadb|rabbitmq) ;;
            *) stop "$s" & ;;
        esac
    done
    wait
    stop rabbitmq
    stop mariadb
}

cmd_purge() {
    [ "$(id -u)" -eq 0 ] || die "run as root"
    cmd_down
    if [ -x "$VENV/bin/python" ]; then
        say "deleting every container under $NOVA_LXD_ENGINE_ROOT"
        nova_lxd_remove_containers "$VENV/bin/python"
    fi
    local d
    for d in "$CLOUD"/*; do
        case "$d" in
            "$VENV"|"$CLOUD/images") ;;
            *) rm -rf "$d" ;;
        esac
    done
    rm -f /etc/sudoers.d/nova-lxd-cloud
    say "purged $CLOUD (kept venv/ and images/)"
}

cmd_status() {
    local s pid port state rc=0
    for s in "${SERVICES[@]}"; do
        [ "$s" = mariadb ] && [ "$(db_backend)" != mariadb ] && continue
        port=${PORT[$s]:-}
        if pid=$(pid_of "$s"); then
            state="running pid $pid"
        else
            state="stopped"
            rc=3
        fi
        printf '%-15s %-20s %s\n' "$s" "$state" "${port:+127.0.0.1:$port}"
    done
    echo "logs: $LOG/"
    return "$rc"
}

cmd_logs() {
    if [ $# -eq 0 ]; then
        ls -1 "$LOG"/*.log
        return
    fi
    tail -n "${2:-50}" "$LOG/$1.log"
}

# One change at a time: CI starts `up` in the background while the
# functional tests run, and the e2e tests' own `up` then waits here.
# flock -o: the lock is held by flock itself, never inherited by the
# services this script starts (they would hold it for ever).
case "${1:-}" in
    up|down|restart|purge)
        if [ -z "${NOVA_LXD_CLOUD_LOCKED:-}" ]; then
            NOVA_LXD_CLOUD_LOCKED=1 exec flock -o \
                /run/lock/nova-lxd-cloud.lock bash "$0" "$@"
        fi ;;
esac

case "${1:-}" in
    up) cmd_up ;;
    down) cmd_down ;;
    restart) cmd_down; cmd_up ;;
    purge) cmd_purge ;;
    status) cmd_status ;;
    logs) shift; cmd_logs "$@" ;;
    *) echo "usage: $0 up|down|restart|purge|status|logs [SERVICE [LINES]]" >&2
       exit 2 ;;
esac
