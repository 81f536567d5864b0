# Shared by the mount benchmarks. `touch_memory KIB` writes and frees up to
# KIB KiB of memory (at most half of what is available) before a cold
# measure: on a VM whose host takes freed memory back, the first touch of
# each page afterwards is slow, and how much had been taken back differed
# from one measure to the next (native reads of one file ran at 0.5-2.2
# GB/s in a session; see bench/results/MOUNT_SEQ.md). Source it; remove
# /dev/shm/shale-touch on exit.

touch_memory() {
  local kib=$1 avail
  avail=$(awk '/MemAvailable/ {print $2}' /proc/meminfo)
  [ "$kib" -le $((avail / 2)) ] || kib=$((avail / 2))
  head -c "${kib}K" /dev/zero > /dev/shm/shale-touch
  rm -f /dev/shm/shale-touch
}
