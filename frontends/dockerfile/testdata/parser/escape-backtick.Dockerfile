# escape=`
FROM mcr.microsoft.com/windows/servercore:ltsc2022
WORKDIR C:\app
COPY bin\release\ C:\app\
RUN powershell -Command `
    $ErrorActionPreference = 'Stop'; `
    Write-Host "hello"
ENV PATH="C:\app;${PATH}"
ENTRYPOINT ["C:\\app\\app.exe"]
