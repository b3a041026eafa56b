-- ArgoCD health of a kubevision.io AutoMLImageJob: a job is Healthy once it succeeded, Degraded when
-- it failed or its spec was rejected, and Progressing while it waits or runs.
local hs = { status = "Progressing", message = "Waiting for the kubevision operator" }
if obj.status == nil then
  return hs
end
local status = obj.status
if obj.metadata.generation ~= nil and status.observedGeneration ~= nil
    and status.observedGeneration < obj.metadata.generation then
  hs.message = "Waiting for the operator to see generation " .. obj.metadata.generation
  return hs
end
local ready, succeeded = nil, nil
if status.conditions ~= nil then
  for _, condition in ipairs(status.conditions) do
    if condition.type == "Ready" then
      ready = condition
    elseif condition.type == "Succeeded" then
      succeeded = condition
    end
  end
end
local function describe(condition, fallback)
  if condition ~= nil and condition.message ~= nil and condition.message ~= "" then
    return condition.message
  end
  if condition ~= nil and condition.reason ~= nil then
    return condition.reason
  end
  return fallback
end
if status.phase == "Succeeded" or (succeeded ~= nil and succeeded.status == "True") then
  hs.status = "Healthy"
  hs.message = describe(succeeded, "Succeeded")
  return hs
end
if status.phase == "Failed" then
  hs.status = "Degraded"
  hs.message = describe(succeeded, describe(ready, status.message or "Failed"))
  return hs
end
if ready ~= nil and ready.status == "False" and ready.reason == "InvalidSpec" then
  hs.status = "Degraded"
  hs.message = describe(ready, "InvalidSpec")
  return hs
end
hs.message = describe(ready, status.phase or "Pending")
return hs
